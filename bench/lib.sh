# bench/lib.sh: the pieces the bench scripts share. Source it, do not run it:
#   . "$(dirname "$0")/lib.sh"
# Every function is named bench_*; the globals it sets are named in its
# comment. Loopback only.

# bench_free_port: prints a TCP port that was free on 127.0.0.1 just now.
bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# bench_wait_listening PID FILE TRIES PAUSE: waits for presenced's line
# "listening on http://127.0.0.1:PORT" in FILE (the server's stdout), reading
# it up to TRIES times PAUSE seconds apart. Sets `port` (empty on failure);
# returns 1 if the process PID exits first or the line never comes.
bench_wait_listening() {
  local pid="$1" file="$2" tries="$3" pause="$4" line
  port=""
  for _ in $(seq 1 "$tries"); do
    line=""
    IFS= read -r line < "$file" || true
    if [[ "$line" == "listening on http://127.0.0.1:"* ]]; then
      port="${line##*:}"
      return 0
    fi
    kill -0 "$pid" 2> /dev/null || return 1
    sleep "$pause"
  done
  return 1
}

# bench_require_built SCRIPT BUILD_DIR HINT TARGET...: exits 2 with
# "SCRIPT: BUILD_DIR/TARGET not built" followed by HINT (may be empty) for the
# first TARGET that is not an executable in BUILD_DIR.
bench_require_built() {
  local script="$1" build="$2" hint="$3" b
  shift 3
  for b in "$@"; do
    if [ ! -x "$build/$b" ]; then
      echo "$script: $build/$b not built$hint" >&2
      exit 2
    fi
  done
}

# bench_stop_quietly PID: if PID (a child of this shell) still runs, sends it
# SIGTERM and reaps it; for cleanup traps, never fails.
bench_stop_quietly() {
  if [ -n "${1:-}" ] && kill -0 "$1" 2> /dev/null; then
    kill "$1" 2> /dev/null || true
    wait "$1" 2> /dev/null || true
  fi
}

# bench_nginx_start DIR WORKERS WORKER_CONNECTIONS [LISTEN_OPTION]: nginx as
# the reference server, on a free port of 127.0.0.1, answering every request
# with the JSON a presenced ping with nothing new gets (the same shape, close
# in size). LISTEN_OPTION is added to its listen line (e.g. reuseport). Sets
# nginx_port and nginx_pids (the master and its workers, comma-separated, for
# loadgen --server-pid). Stop it with bench_nginx_stop DIR.
bench_nginx_start() {
  local dir="$1" workers="$2" worker_connections="$3" listen_option="${4:-}"
  mkdir -p "$dir"
  rm -f "$dir/nginx.pid"
  nginx_port=$(bench_free_port)
  cat > "$dir/nginx.conf" << EOF
worker_processes $workers;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $worker_connections; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$nginx_port${listen_option:+ $listen_option};
    location / {
      default_type application/json;
      return 200 '{"result":"success","msg":"","presences":{},"server_timestamp":1700000000.123456,"presence_last_update_id":1000400}';
    }
  }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  for _ in $(seq 1 100); do
    [ -s "$dir/nginx.pid" ] && break
    sleep 0.05
  done
  # Let the master fork its workers before they are listed.
  sleep 0.2
  nginx_pids="$(cat "$dir/nginx.pid"),$(pgrep -d, -P "$(cat "$dir/nginx.pid")")"
}

# bench_nginx_stop DIR: stops the nginx of DIR and waits until it is gone.
bench_nginx_stop() {
  local dir="$1"
  [ -f "$dir/nginx.pid" ] || return 0
  kill "$(cat "$dir/nginx.pid")" 2> /dev/null || true
  for _ in $(seq 1 100); do
    pgrep -F "$dir/nginx.pid" > /dev/null 2>&1 || break
    sleep 0.05
  done
}
