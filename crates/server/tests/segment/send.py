"""Sends portal interactions and an identify with Segment's official Python
client (segment-analytics-python), unchanged, to the host given.

Usage: python send.py HOST WRITE_KEY
Exits non-zero when the client reports any error.
"""

import sys

import segment.analytics as analytics

host, write_key = sys.argv[1], sys.argv[2]
errors = []

analytics.write_key = write_key
analytics.host = host
analytics.gzip = True  # Tracklog inflates gzip bodies
analytics.max_retries = 2
analytics.on_error = lambda error, items: errors.append(repr(error))

analytics.identify("c-py", {"name": "Ana Lima", "email": "ana@example.com", "plan": "gold"})
analytics.track(
    "c-py",
    "portal_viewknowledgearticle",
    {
        "portal_knowledgearticleid": "KA-1",
        "portal_knowledgetitle": "Reset your password",
        "language": "en-US",
        "session_id": "s-py",
    },
    message_id="py-article",
)
analytics.page(
    "c-py",
    name="Printer jams",
    properties={"portal_forumthreadid": "T-7"},
    anonymous_id="anon-py",
    message_id="py-forum",
)
analytics.track("c-py", "portal_search", {"portal_searchstring": "printer jam"}, message_id="py-search")
# Not a type Tracklog captures: refused per item, yet the client sees a 200.
analytics.track("c-py", "portal_viewvideo", {"video": "v-1"}, message_id="py-video")

# The client batches in a background thread: flush and stop it explicitly.
analytics.flush()
analytics.shutdown()

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print("sent")
