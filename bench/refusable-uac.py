# The shared UAC scenario (../shared/bench/kamailio/uac_rr.xml), told that a
# 503 answer is a refusal: the call ACKs it (RFC 3261 §17.1.1.3: the INVITE's
# branch) and ends at once as failed, instead of waiting for a 200 that never comes
# while the switch retransmits its 503. Used for the overload trial only.
#   python3 bench/refusable-uac.py SHARED_UAC_XML OUT_XML
import sys, re
src = open(sys.argv[1]).read()
before_end = src.rindex('<ResponseTimeRepartition')
head = src[:before_end]
refusal_recv = '  <recv response="503" optional="true" next="refused"></recv>\n'
anchor = '<recv response="200" rtd="true"'
assert anchor in head, "the shared scenario has changed: no INVITE 200 to anchor on"
head = head.replace('  ' + anchor, refusal_recv + '  ' + anchor, 1)
# A normal call ends after the BYE's 200; it must not run into the refusal.
head = head.rstrip() + '\n  <nop next="done"></nop>\n'
# The ACK's place in SIPp's message list (every send, recv, pause and nop counts;
# labels do not): [branch-N] names the INVITE's branch, message 0.
index = len(re.findall(r'<(send|recv|pause|nop)\b', head))
ack = f'''  <label id="refused"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-{index}]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <!-- Fails the call: nothing more comes, and a receive that times out with
       nowhere to go is how SIPp counts a failed call (stop_call counts it successful). -->
  <recv request="NOTIFY" timeout="1"></recv>
'''
head += ack + '  <label id="done"/>\n  '
open(sys.argv[2], 'w').write(head + src[before_end:])
