# Throughput, server CPU per request and open-loop p99 of presenced against
# realm size, with nginx (the HTTP ceiling of the machine) measured in the
# same run. Called by bench/run-all.sh:
#   gnuplot -e "datafile='plot.dat'; outfile='realm_size.png'" bench/plot.gp
set terminal pngcairo size 900,1000 font ",11"
set output outfile
set multiplot layout 3,1 title "presenced: modern incremental pings against realm size (2 cores, loopback, one run)"
set logscale x 10
set xrange [500:2000000]
set format x "%.0s%c"
set grid
set key outside right top
set lmargin 12
set ylabel "requests / s\n(closed loop)"
set yrange [0:*]
plot datafile using 1:2 with linespoints lw 2 pt 7 title "presenced", \
     datafile using 1:3 with linespoints lw 2 pt 5 dt 2 title "nginx ceiling"
set ylabel "server CPU us\nper request"
plot datafile using 1:6 with linespoints lw 2 pt 7 title "presenced", \
     datafile using 1:7 with linespoints lw 2 pt 5 dt 2 title "nginx"
set xlabel "users in the realm"
set ylabel "p99 latency, ms\n(open loop)"
plot datafile using 1:4 with linespoints lw 2 pt 7 title "presenced", \
     datafile using 1:5 with linespoints lw 2 pt 5 dt 2 title "nginx"
unset multiplot
