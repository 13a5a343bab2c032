// Node has two microtask queues: every process.nextTick callback runs before
// the promise callbacks, whatever order they were queued in.
'use strict';

Promise.resolve().then(() => console.log('promise callback'));
process.nextTick(() => console.log('nextTick callback'));
