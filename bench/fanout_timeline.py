#!/usr/bin/env python3
"""The timeline of one event fanned out to W parked polls, from a system-wide
`perf record` of scheduler and syscall tracepoints (bench/fanout-timeline.sh).

Usage: fanout_timeline.py PERF_SCRIPT_TEXT SERVER_PID LOADGEN_PID

PERF_SCRIPT_TEXT is `perf script -F comm,pid,tid,cpu,time,event,trace`.
For every fan-out round (a burst of more than half W answer sends by the
server, rounds more than 0.3 s apart; the registration burst is skipped) it
prints, in ms from the loadgen's trigger ping: the first and last answer
sent by each server thread, the first and last answer the loadgen read,
the CPU each process got in the window (from sched_switch; SERVER and
LOADGEN are the two of this run), the server's
system calls and epoll events in the window, and how often its threads were
switched out (R: preempted, S/D: went to sleep).
"""
import collections
import re
import sys

LINE = re.compile(r'^\s*(.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')


def main():
    path, server, client = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ev = []
    for line in open(path, errors='replace'):
        m = LINE.match(line)
        if m:
            comm, pid, tid, cpu, t, name, rest = m.groups()
            ev.append((float(t), comm, int(pid), int(tid), int(cpu),
                       name.rstrip(':'), rest))
    ev.sort(key=lambda e: e[0])
    pid_of = {e[3]: e[2] for e in ev}
    sends = [e for e in ev
             if e[2] == server and e[5] in ('syscalls:sys_enter_sendmsg',
                                            'syscalls:sys_enter_sendto')]
    bursts, cur = [], []
    for e in sends:
        if cur and e[0] - cur[-1][0] > 0.3:
            bursts.append(cur)
            cur = []
        cur.append(e)
    if cur:
        bursts.append(cur)
    big = max((len(b) for b in bursts), default=0)
    rounds = [b for b in bursts if len(b) > big // 2][1:]  # skip registration
    if not rounds:
        sys.exit('fanout_timeline: no fan-out round found in ' + path)
    for n, r in enumerate(rounds, 1):
        first, last = r[0][0], r[-1][0]
        trig = [e for e in ev if e[2] == client
                and e[5] in ('syscalls:sys_enter_sendto',
                             'syscalls:sys_enter_sendmsg')
                and first - 0.2 < e[0] <= first]
        t0 = trig[-1][0] if trig else first
        ms = lambda t: (t - t0) * 1e3
        reads = [e for e in ev if e[2] == client
                 and e[5] == 'syscalls:sys_exit_recvfrom'
                 and t0 <= e[0] <= last + 0.5
                 and not e[6].startswith('0xfff')]
        end = max(last, reads[-1][0] if reads else last)
        print(f'round {n}: {len(r)} answers sent, trigger at 0'
              f'{"" if trig else " (not seen: first send)"}, '
              f'window {ms(end):.2f} ms')
        per = collections.defaultdict(list)
        for e in r:
            per[e[3]].append(e[0])
        for tid, ts in sorted(per.items()):
            print(f'  server thread {tid}: {len(ts)} answers sent from '
                  f'{ms(ts[0]):.2f} to {ms(ts[-1]):.2f} ms')
        if reads:
            print(f'  loadgen: {len(reads)} reads from {ms(reads[0][0]):.2f} '
                  f'to {ms(reads[-1][0]):.2f} ms')
        # CPU per process in [t0, end], from the switches; the server and
        # this loadgen by pid (other processes may share their names).
        def who_is(tid, comm):
            pid = pid_of.get(tid)
            if pid == server:
                return 'SERVER'
            if pid == client:
                return 'LOADGEN'
            return comm

        oncpu = collections.defaultdict(float)
        running = {}
        for e in ev:
            if e[0] > end:
                break
            if e[5] != 'sched:sched_switch':
                continue
            prev = re.search(r'prev_comm=(.*?) prev_pid=(\d+)', e[6])
            nxt = re.search(r'next_comm=(.*?) next_pid=(\d+)', e[6])
            if e[4] in running:
                since, who = running[e[4]]
                a = max(since, t0)
                if e[0] > a:
                    oncpu[who] += e[0] - a
            running[e[4]] = (e[0], who_is(int(nxt.group(2)), nxt.group(1))
                             if nxt else '?')
        for since, who in running.values():
            oncpu[who] += max(0.0, end - max(since, t0))
        top = sorted(oncpu.items(), key=lambda x: -x[1])[:8]
        print('  CPU in the window, ms: ' +
              ', '.join(f'{k} {v * 1e3:.1f}' for k, v in top))
        inside = [e for e in ev if e[2] == server and t0 <= e[0] <= last]
        calls = collections.Counter(e[5].split(':')[1].replace(
            'sys_enter_', '').replace('sys_exit_', '') for e in inside
            if e[5].startswith('syscalls:sys_enter_')
            or e[5] == 'syscalls:sys_exit_recvfrom')
        polled = sum(int(e[6].strip(), 16) for e in inside
                     if e[5] == 'syscalls:sys_exit_epoll_wait'
                     and int(e[6].strip(), 16) < 1 << 31)
        print('  server system calls: ' + ', '.join(
            f'{k} {v} ({v / len(r):.2f}/answer)' for k, v in calls.items()) +
            f'; epoll events returned {polled}')
        outs = collections.Counter()
        for e in ev:
            if t0 <= e[0] <= last and e[5] == 'sched:sched_switch':
                m = re.search(r'prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+)',
                              e[6])
                if m and int(m.group(1)) in per:
                    outs[m.group(2)] += 1
        print('  server threads switched out: ' +
              ', '.join(f'{k} {v}' for k, v in sorted(outs.items())))


if __name__ == '__main__':
    main()
