# gnuplot -e "dir='DIR'" bench/results/rss22/rss_plot.gp : RSS, the anonymous
# part, and malloc's in-use + mmap bytes from DIR/memory.csv (sampled every 2 s).
set datafile separator ","
set terminal pngcairo size 900,420 noenhanced
set output dir."/memory.png"
set key outside bottom center horizontal
set xlabel "seconds since sampling began (the generator starts with it; warm-up: 300 s)"
set ylabel "MB"
set grid
plot dir."/memory.csv" every ::1 using 1:2 with lines title "RSS", \
     "" every ::1 using 1:11 with lines title "anonymous", \
     "" every ::1 using 1:(($4+$6)/1048576) with lines title "malloc in use + mmap", \
     "" every ::1 using 1:(($4+$5+$6)/1048576) with lines title "malloc arena + mmap"
