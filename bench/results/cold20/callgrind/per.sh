# usage: per.sh DIR : instructions per ping (20,000 pings) of the I/O thread and its main parts
d=$1
callgrind_annotate --inclusive=yes $d/callgrind.out.1 2>/dev/null > $d/incl.txt
for f in "scheduler::run(" "HttpSession::HandleRequest(" "HttpSession::Dispatch(" "HttpSession::Respond(" "AppendResponseHead(" "Response::Response(presence::api::Response&&)" "Response::~Response()" "ZulipApi::Authenticate(" "RequestParams::Parse(" "ZulipApi::ParsePing(" "ZulipApi::PingAnswer(" "basic_parser<true>::put("; do
  v=$(grep -F -m1 "$f" $d/incl.txt | awk '{print $1}' | tr -d ,)
  printf "%-50s %8s\n" "$f" $(( ${v:-0} / 20000 ))
done
