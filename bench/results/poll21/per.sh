#!/usr/bin/env bash
# usage: per.sh DIR : total instructions per answer, and the inclusive cost
# per answer of the parts of the answer cycle (DIR from cg-churn.sh)
d=$1
a=$(python3 -c "import json,sys;print(json.loads(open('$d/churn.json').read().strip().splitlines()[-1])['answers'])")
e=$(python3 -c "import json,sys;print(json.loads(open('$d/churn.json').read().strip().splitlines()[-1])['events_per_answer'])")
callgrind_annotate --inclusive=yes "$d/callgrind.out.1" 2>/dev/null > "$d/incl.txt"
t=$(grep "PROGRAM TOTALS" "$d/incl.txt" | awk '{print $1}' | tr -d ,)
echo "answers $a, events/answer $e, instructions/answer $(( t / a ))"
for f in "scheduler::run(" "HttpSession::HandleRequest(" "ZulipApi::HandleAuthenticated(" \
  "ZulipApi::Authenticate(" "SipHash24(" "ConstantTimeEqual(std::basic" "RouteMatch<" "MatchPattern(" \
  "RequestParams::Parse(" "EventsApi::GetEvents(" "HttpSession::Dispatch(" "HttpSession::Park()" \
  "AnswerQueue::RunSlice()" "EventsApi::Resume(" "EventsBody(" "AppendJsonString(" "HttpSession::Respond(" \
  "basic_parser<true>::put(" "OnPeek("; do
  v=$(grep -F -m1 "$f" "$d/incl.txt" | awk '{print $1}' | tr -d ,)
  printf "%-34s %8s\n" "$f" $(( ${v:-0} / a ))
done
