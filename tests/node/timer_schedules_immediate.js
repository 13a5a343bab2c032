// An immediate scheduled by a timer runs after every timer due in that
// timers phase (in the next iteration's check phase).
'use strict';

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

setTimeout(() => {
  console.log('timer 1');
  setImmediate(() => console.log('immediate from timer 1'));
}, 5);
setTimeout(() => console.log('timer 2'), 5);
// Every timer is overdue when the first timers phase runs, so they all run
// in that phase whatever the clock did between the setTimeout calls.
busyWait(10);
