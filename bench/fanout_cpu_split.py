#!/usr/bin/env python3
"""Where the server's CPU goes while it answers a fan-out, by call chain
(bench/fanout-timeline.sh --split).

Usage: fanout_cpu_split.py PERF_SCRIPT_TEXT

PERF_SCRIPT_TEXT is `perf script -F tid,time,event,ip,sym` of a
`perf record -g -e cpu-clock -e syscalls:sys_enter_sendmsg
-e syscalls:sys_enter_sendto -p SERVER` (an answer is one or the other).
Only samples inside the fan-out rounds count (bursts of answer sends more
than 0.5 s apart; the first burst, the registrations, is skipped). Each
sample goes to one share by its kernel frames: the sender's side of
sendmsg; on loopback, the receiving side of the same segment (TCP input of
the client's socket, run by the sending thread) and the wake-up of the
reader; epoll, futex, scheduling; user space.
"""
import collections
import re
import sys

SHARES = [
    ('loopback receive: wake the reader',
     {'sock_def_readable', 'ep_poll_callback', '__wake_up_sync_key',
      'try_to_wake_up'}, {'tcp_v4_rcv', 'process_backlog', 'net_rx_action'}),
    ('loopback receive: TCP input of the peer',
     None, {'tcp_v4_rcv', 'process_backlog', 'net_rx_action',
            '__netif_receive_skb'}),
    ('send (sendmsg or sendto): sender side', None,
     {'__x64_sys_sendmsg', 'tcp_sendmsg', '____sys_sendmsg', 'fdget',
      'inet_send_prepare', '__sys_sendmsg', '__x64_sys_sendto',
      '__sys_sendto'}),
    ('epoll_wait', None, {'do_epoll_wait', '__x64_sys_epoll_wait'}),
    ('futex (lock waits and wakes)', None, {'__x64_sys_futex'}),
    ('scheduling (switches, preemption)', None,
     {'finish_task_switch.isra.0', '__schedule'}),
    ('tracing overhead', None, {'perf_swevent_event', 'perf_trace_buf_alloc',
                                'perf_tp_event'}),
    ('other system calls', None, {'do_syscall_64'}),
]


def share(frames):
    s = set(frames)
    kernel = frames and frames[0].startswith('k:')
    names = {f[2:] for f in s}
    for name, need_all, need_any in SHARES:
        if need_all is not None and not (names & need_all and
                                         names & need_any):
            continue
        if need_all is None and not names & need_any:
            continue
        return name
    return 'other kernel' if kernel else 'user space'


def main():
    samples, sends = [], []
    for block in open(sys.argv[1], errors='replace').read().split('\n\n'):
        lines = [l for l in block.split('\n') if l.strip()]
        if not lines:
            continue
        m = re.match(r'\s*(\d+)\s+([\d.]+):\s+(\S+):', lines[0])
        if not m:
            continue
        t = float(m.group(2))
        if 'sendmsg' in m.group(3) or 'sendto' in m.group(3):
            sends.append(t)
            continue
        frames = []
        for l in lines[1:]:
            parts = l.split()
            if len(parts) >= 2:
                frames.append(('k:' if parts[0].startswith('ffffffff')
                               else 'u:') + parts[1])
        samples.append((t, frames))
    if not sends:
        sys.exit('fanout_cpu_split: no sendmsg or sendto events')
    bursts, cur = [], [sends[0]]
    for t in sends[1:]:
        if t - cur[-1] > 0.5:
            bursts.append(cur)
            cur = []
        cur.append(t)
    bursts.append(cur)
    rounds = [(b[0] - 0.003, b[-1]) for b in bursts[1:]]
    shares = collections.Counter()
    user_leaf = collections.Counter()
    user_any = collections.Counter()
    kernel_leaf = collections.Counter()
    n = 0
    for t, frames in samples:
        if any(a <= t <= b for a, b in rounds):
            n += 1
            where = share(frames)
            shares[where] += 1
            if frames and frames[0].startswith('k:'):
                kernel_leaf[frames[0][2:]] += 1
            if where == 'user space' and frames:
                user_leaf[frames[0][2:]] += 1
                for f in set(frames):
                    user_any[f[2:]] += 1
    print(f'{n} samples in {len(rounds)} fan-out rounds')
    for name, v in shares.most_common():
        print(f'{100 * v / max(n, 1):5.1f}%  {name}')
    # Where user space goes: the functions sampled at the leaf (self), and
    # the callers on the stack (inclusive), as shares of all the samples.
    print('user space, self (leaf function), top 25:')
    for name, v in user_leaf.most_common(25):
        print(f'{100 * v / max(n, 1):5.1f}%  {name}')
    print('kernel, self (leaf function), top 25:')
    for name, v in kernel_leaf.most_common(25):
        print(f'{100 * v / max(n, 1):5.1f}%  {name}')
    print('user space, inclusive (on the stack), top 25:')
    for name, v in user_any.most_common(25):
        print(f'{100 * v / max(n, 1):5.1f}%  {name}')


if __name__ == '__main__':
    main()
