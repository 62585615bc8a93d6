'use strict';
// Delayed messages and retries with the Node.js RocketMQ client ali-ons (4.x remoting protocol):
// a message sent with `delayTimeLevel = LEVEL` arrives no earlier than LEVEL_MS after it was
// sent, and not as a plain message first; a message whose handler asks for a retry
// (Consumer.ACTION_RETRY: ali-ons sends CONSUMER_SEND_MSG_BACK) comes back through the group's
// retry topic under its own topic with reconsumeTimes 1, no earlier than RETRY_MS after the
// handler saw it first. Prints one verdict line: `ok …` or `FAIL …`.
// Environment: NAMESRV (host:port), TOPIC (must exist), LEVEL (1), LEVEL_MS (the broker's delay
// of that level), RETRY_MS (its delay of level 3, the first retry), WAIT_MS, ALIONS_DIR.
const path = require('path');
const { Producer, Consumer, Message } = require(path.join(process.env.ALIONS_DIR, 'node_modules', 'ali-ons'));

const nameSrv = process.env.NAMESRV || '127.0.0.1:9876';
const topic = process.env.TOPIC || 'CompatDelay';
const level = Number(process.env.LEVEL || 1);
const levelMs = Number(process.env.LEVEL_MS || 1000);
const retryMs = Number(process.env.RETRY_MS || 10000);
const waitMs = Number(process.env.WAIT_MS || 60000);
const run = `${process.pid}_${Date.now()}`;
// ali-ons asks an HTTP endpoint for the NameServer when none is given; we always give one.
const httpclient = { request: async () => { throw new Error('no http lookup'); } };

let passed = false;
function fail(msg) { console.log(`FAIL ${msg}`); process.exit(1); }
const describe = e => `${e && e.name} ${(e && e.code) || ''} ${e && e.message}`.replace(/\s+/g, ' ').trim();
process.on('uncaughtException', e => { if (passed) process.exit(0); fail(`uncaught ${describe(e)}`); });
process.on('unhandledRejection', e => { if (passed) process.exit(0); fail(`unhandled rejection ${describe(e)}`); });
// ali-ons emits 'error' for conditions it recovers from (a fresh group's QUERY_NOT_FOUND, the
// error a retried handler raises): reported, not judged.
let warned = 0;
function warn(what, e) { if (!passed && ++warned <= 10) console.log(`warn ${what}: ${describe(e)}`); }
function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms);
  })]).finally(() => clearTimeout(t));
}

(async () => {
  let phase = 'consumer start';
  try {
    const delayedBody = `delayed ${run}`;
    const retryBody = `retry ${run}`;
    let sentAt = null; // set just before the delayed message is sent
    let delayedOk = false;
    let retryFirstSeen = null;
    let retryOk = false;
    const consumer = new Consumer({ httpclient, nameSrv, consumerGroup: `compat_delay_cg_${run}`,
      consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET', rebalanceInterval: 2000,
      brokerSuspendMaxTimeMillis: 2000, consumerTimeoutMillisWhenSuspend: 5000 });
    consumer.on('error', e => warn('consumer error', e));
    const timer = setTimeout(() => fail(`timed out: delayed ${delayedOk ? 'arrived' : 'missing'}, ` +
      `retry ${retryOk ? 'arrived' : retryFirstSeen ? 'not redelivered' : 'missing'}`), waitMs);
    const done = () => {
      if (!delayedOk || !retryOk || passed) return;
      passed = true;
      clearTimeout(timer);
      console.log(`ok delayed message arrived after level ${level}, retry came back through the retry topic`);
      setImmediate(async () => {
        try { await withTimeout(consumer.close(), 5000, 'consumer close'); } catch (e) { /* ignore */ }
        process.exit(0);
      });
    };
    consumer.subscribe(topic, '*', async msg => {
      if (passed) return undefined;
      const body = msg.body ? msg.body.toString() : '';
      const now = Date.now();
      if (body === delayedBody) {
        if (sentAt === null || now < sentAt + levelMs) fail(`delayed message arrived ${now - sentAt} ms after it was sent, before its ${levelMs} ms`);
        if (msg.storeTimestamp < sentAt + levelMs) fail(`delayed message stored ${msg.storeTimestamp - sentAt} ms after it was sent`);
        if (msg.delayTimeLevel !== 0) fail(`delivered message still has DELAY ${msg.delayTimeLevel}`);
        if (delayedOk) fail('delayed message delivered twice');
        delayedOk = true;
      } else if (body === retryBody) {
        if (msg.topic !== topic) fail(`retry shows topic ${msg.topic}, not ${topic}`);
        if (retryFirstSeen === null) {
          if (msg.reconsumeTimes !== 0) fail(`first delivery has reconsumeTimes ${msg.reconsumeTimes}`);
          retryFirstSeen = now;
          return Consumer.ACTION_RETRY;
        }
        if (msg.reconsumeTimes !== 1) fail(`redelivery has reconsumeTimes ${msg.reconsumeTimes}, not 1`);
        if (now < retryFirstSeen + retryMs) fail(`retry came back after ${now - retryFirstSeen} ms, before ${retryMs} ms`);
        retryOk = true;
      }
      done();
      return undefined;
    });
    await withTimeout(consumer.ready(), 30000, 'consumer start');

    phase = 'producer start';
    const producer = new Producer({ httpclient, nameSrv, producerGroup: `compat_delay_pg_${run}`,
      accessKeyId: '', accessKeySecret: '', sendMsgTimeout: 5000, retryTimesWhenSendFailed: 0 });
    producer.on('error', e => warn('producer error', e));
    await withTimeout(producer.ready(), 30000, 'producer start');
    phase = 'send';
    const delayed = new Message(topic, 'TagDelay', delayedBody);
    delayed.delayTimeLevel = level;
    sentAt = Date.now();
    let r = await withTimeout(producer.send(delayed), 30000, 'send delayed');
    if (!r || r.sendStatus !== 'SEND_OK') fail(`send delayed: ${JSON.stringify(r)}`);
    r = await withTimeout(producer.send(new Message(topic, 'TagRetry', retryBody)), 30000, 'send retry');
    if (!r || r.sendStatus !== 'SEND_OK') fail(`send retry: ${JSON.stringify(r)}`);
    console.log(`sent a message with delay level ${level} and one to retry to ${topic}`);
    phase = 'producer close';
    await withTimeout(producer.close(), 10000, 'producer close');
    producer.on('error', e => warn('producer error', e));
  } catch (e) {
    fail(`${phase}: ${describe(e)}`);
  }
})();
