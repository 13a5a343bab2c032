// An async function woken by a timer resumes before the next timer due at
// the same time (its continuation is a microtask).
'use strict';

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

async function sleeper() {
  await new Promise((resolve) => setTimeout(() => {
    console.log('timer 1 resolves');
    resolve();
  }, 5));
  console.log('task resumed');
}

sleeper();
setTimeout(() => console.log('timer 2'), 5);
// Every timer is overdue when the first timers phase runs, so they all run
// in that phase whatever the clock did between the setTimeout calls.
busyWait(10);
