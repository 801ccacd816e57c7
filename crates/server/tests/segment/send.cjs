// Sends portal interactions and an identify with Segment's official Node
// client (@segment/analytics-node), unchanged, to the host given.
//
// Usage: node send.cjs HOST WRITE_KEY   (NODE_PATH names the client's node_modules)
// Exits non-zero when the client reports any error.
'use strict';

const { Analytics } = require('@segment/analytics-node');

const [host, writeKey] = process.argv.slice(2);
const errors = [];

// flushAt 1 and a short interval: every call is sent at once, not batched for 10 s.
const analytics = new Analytics({ writeKey, host, flushAt: 1, flushInterval: 50, maxRetries: 2 });
analytics.on('error', (error) => errors.push(String(error && (error.reason || error.message || error))));

analytics.identify({ userId: 'c-node', traits: { firstName: 'Bo', lastName: 'Berg', email: 'bo@example.com' } });
analytics.track({
  userId: 'c-node',
  anonymousId: 'anon-node',
  event: 'portal_viewblogpost',
  messageId: 'node-blog',
  properties: { portal_blogpostid: 'B-3', portal_blogtitle: 'What is new' },
});
analytics.page({
  userId: 'c-node',
  name: 'Toner',
  messageId: 'node-article',
  properties: { portal_knowledgearticleid: 'KA-2', session_id: 's-node' },
});

analytics
  .closeAndFlush({ timeout: 20000 })
  .then(() => {
    if (errors.length) {
      console.error(errors.join('\n'));
      process.exit(1);
    }
    console.log('sent');
  })
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
