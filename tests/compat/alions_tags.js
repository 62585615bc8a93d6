'use strict';
// Tag filtering with the Node.js RocketMQ client ali-ons (4.x remoting protocol): COUNT messages
// tagged TagA, TagB and TagC in turn; a consumer subscribed to 'TagA || TagC' must receive every
// TagA and TagC message and no TagB message. A second group subscribed to 'TagB' must receive
// exactly the TagB ones. ali-ons checks tags again itself, but passes messages without a tag:
// the caller stores untagged messages in the topic first (ali-ons cannot send one, it writes
// the tag `null`), and one reaching a handler means the broker did not filter. Every queue
// ends with tagged messages one of the groups must receive, so all untagged ones are pulled
// before the verdict. Prints one verdict line: `ok …` or `FAIL …`.
// Environment: NAMESRV (host:port), TOPIC (must exist), COUNT, WAIT_MS, ALIONS_DIR.
const path = require('path');
const { Producer, Consumer, Message } = require(path.join(process.env.ALIONS_DIR, 'node_modules', 'ali-ons'));

const nameSrv = process.env.NAMESRV || '127.0.0.1:9876';
const topic = process.env.TOPIC || 'CompatTags';
const count = Number(process.env.COUNT || 30);
const waitMs = Number(process.env.WAIT_MS || 60000);
const run = `${process.pid}_${Date.now()}`;
const httpclient = { request: async () => { throw new Error('no http lookup'); } };
const tags = ['TagA', 'TagB', 'TagC'];

let passed = false;
function fail(msg) { console.log(`FAIL ${msg}`); process.exit(1); }
const describe = e => `${e && e.name} ${(e && e.code) || ''} ${e && e.message}`.replace(/\s+/g, ' ').trim();
process.on('uncaughtException', e => { if (passed) process.exit(0); fail(`uncaught ${describe(e)}`); });
process.on('unhandledRejection', e => { if (passed) process.exit(0); fail(`unhandled rejection ${describe(e)}`); });
let warned = 0;
function warn(what, e) { if (!passed && ++warned <= 10) console.log(`warn ${what}: ${describe(e)}`); }
function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms);
  })]).finally(() => clearTimeout(t));
}

// A consumer group that must receive exactly the messages whose tag is in `want`.
function expect(group, expression, want, sent) {
  const missing = new Set([...sent.entries()].filter(([, tag]) => want.includes(tag)).map(([body]) => body));
  const consumer = new Consumer({ httpclient, nameSrv, consumerGroup: group,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', rebalanceInterval: 2000,
    brokerSuspendMaxTimeMillis: 2000, consumerTimeoutMillisWhenSuspend: 5000 });
  consumer.on('error', e => warn(`${group} error`, e));
  const done = new Promise(resolve => {
    consumer.subscribe(topic, expression, async msg => {
      const body = msg.body ? msg.body.toString() : '';
      if (!msg.tags) fail(`${group} subscribed to '${expression}' received an untagged message, which only the broker's filter keeps out: ${body}`);
      const tag = sent.get(body);
      if (tag === undefined) return; // another run's message
      if (!want.includes(tag)) fail(`${group} subscribed to '${expression}' received a ${tag} message: ${body}`);
      if (msg.tags !== tag) fail(`${group}: tags ${msg.tags} != ${tag}`);
      missing.delete(body);
      if (missing.size === 0) resolve();
    });
  });
  return { consumer, done, missing };
}

(async () => {
  let phase = 'producer start';
  try {
    const producer = new Producer({ httpclient, nameSrv, producerGroup: `compat_tags_pg_${run}`,
      accessKeyId: '', accessKeySecret: '', sendMsgTimeout: 5000, retryTimesWhenSendFailed: 0 });
    producer.on('error', e => warn('producer error', e));
    await withTimeout(producer.ready(), 30000, 'producer start');
    const sent = new Map();
    for (let i = 0; i < count; i++) {
      phase = `send #${i}`;
      const tag = tags[i % tags.length];
      const body = `tags ${run} #${i} ${tag}`;
      const r = await withTimeout(producer.send(new Message(topic, tag, body)), 30000, 'send');
      if (!r || r.sendStatus !== 'SEND_OK') fail(`send #${i}: ${JSON.stringify(r)}`);
      sent.set(body, tag);
    }
    await withTimeout(producer.close(), 10000, 'producer close');
    producer.on('error', e => warn('producer error', e));

    phase = 'consume';
    const ac = expect(`compat_tags_ac_${run}`, 'TagA || TagC', ['TagA', 'TagC'], sent);
    const b = expect(`compat_tags_b_${run}`, 'TagB', ['TagB'], sent);
    const timer = setTimeout(() => fail(`timed out: ${ac.missing.size} TagA/TagC and ${b.missing.size} TagB messages not received`), waitMs);
    await Promise.all([ac.done, b.done]);
    clearTimeout(timer);
    passed = true;
    console.log(`ok tag filters: 'TagA || TagC' and 'TagB' each received exactly their ${count} messages' share`);
    for (const c of [ac.consumer, b.consumer]) {
      try { await withTimeout(c.close(), 5000, 'consumer close'); } catch (e) { /* the verdict is in */ }
    }
    process.exit(0);
  } catch (e) {
    fail(`${phase}: ${describe(e)}`);
  }
})();
