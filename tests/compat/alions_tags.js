'use strict';
// Tag filtering with the Node.js RocketMQ client ali-ons (4.x remoting protocol): a consumer
// subscribed to `TagA || TagC` gets every TagA and TagC message and nothing else. ali-ons checks
// tags again itself but lets messages without a tag through, so an untagged message reaching
// the handler would mean the broker did not filter. The caller stores untagged messages in the
// topic first (ali-ons cannot send one: it writes the tag `null`); this script then sends tagged
// ones to every queue, and passes only when all expected messages arrived and no untagged one.
// Prints one verdict line: `ok …` or `FAIL …`.
// Environment: NAMESRV (host:port), TOPIC (must exist), COUNT, WAIT_MS, ALIONS_DIR.
const path = require('path');
const { Producer, Consumer, Message } = require(path.join(process.env.ALIONS_DIR, 'node_modules', 'ali-ons'));

const nameSrv = process.env.NAMESRV || '127.0.0.1:9876';
const topic = process.env.TOPIC || 'CompatTags';
const count = Number(process.env.COUNT || 30);
const waitMs = Number(process.env.WAIT_MS || 60000);
const run = `${process.pid}_${Date.now()}`;
// ali-ons asks an HTTP endpoint for the NameServer when none is given; we always give one.
const httpclient = { request: async () => { throw new Error('no http lookup'); } };

let passed = false;
function fail(msg) { console.log(`FAIL ${msg}`); process.exit(1); }
const describe = e => `${e && e.name} ${(e && e.code) || ''} ${e && e.message}`.replace(/\s+/g, ' ').trim();
process.on('uncaughtException', e => { if (passed) process.exit(0); fail(`uncaught ${describe(e)}`); });
process.on('unhandledRejection', e => { if (passed) process.exit(0); fail(`unhandled rejection ${describe(e)}`); });
let warned = 0;
function warn(what, e) { if (!passed && ++warned <= 10) console.log(`warn ${what}: ${describe(e)}`); }
const timeout = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) =>
  setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms).unref())]);

(async () => {
  let phase = 'producer start';
  try {
    const producer = new Producer({ httpclient, nameSrv, producerGroup: `compat_tags_pg_${run}`,
      accessKeyId: '', accessKeySecret: '', sendMsgTimeout: 5000, retryTimesWhenSendFailed: 0 });
    producer.on('error', e => warn('producer error', e));
    await timeout(producer.ready(), 30000, 'producer start');
    const expected = new Set();
    const send = async (tag, body) => {
      phase = `send ${body}`;
      const r = await timeout(producer.send(new Message(topic, tag, body)), 30000, 'send');
      if (!r || r.sendStatus !== 'SEND_OK') fail(`send ${body}: ${JSON.stringify(r)}`);
    };
    // Eight TagC last, so that every queue ends with an expected message (ali-ons sends round
    // robin): when they are in, every untagged message before them was pulled.
    const tags = ['TagA', 'TagB', 'TagC'];
    for (let i = 0; i < count + 8; i++) {
      const tag = i >= count ? 'TagC' : tags[i % 3];
      const body = `${tag} ${run} #${i}`;
      await send(tag, body);
      if (tag !== 'TagB') expected.add(body);
    }
    await timeout(producer.close(), 10000, 'producer close');
    producer.on('error', e => warn('producer error', e));

    phase = 'consume';
    const total = expected.size;
    const consumer = new Consumer({ httpclient, nameSrv, consumerGroup: `compat_tags_cg_${run}`,
      consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', rebalanceInterval: 2000,
      brokerSuspendMaxTimeMillis: 2000, consumerTimeoutMillisWhenSuspend: 5000 });
    consumer.on('error', e => warn('consumer error', e));
    const timer = setTimeout(() => fail(`timed out: ${expected.size} of ${total} TagA/TagC messages not received`), waitMs);
    consumer.subscribe(topic, 'TagA || TagC', async msg => {
      if (passed) return;
      const body = msg.body ? msg.body.toString() : '';
      if (!msg.tags) fail(`the broker let an untagged message through a tag subscription: ${body}`);
      if (!body.includes(run)) return; // earlier runs' messages in the same topic
      if (msg.tags !== 'TagA' && msg.tags !== 'TagC') fail(`tag ${msg.tags} delivered for ${body}`);
      expected.delete(body);
      if (expected.size === 0) {
        passed = true;
        clearTimeout(timer);
        console.log(`ok received all ${total} TagA/TagC messages and nothing else`);
        setImmediate(async () => {
          try { await timeout(consumer.close(), 5000, 'consumer close'); } catch (e) { /* ignore */ }
          process.exit(0);
        });
      }
    });
  } catch (e) {
    fail(`${phase}: ${describe(e)}`);
  }
})();
