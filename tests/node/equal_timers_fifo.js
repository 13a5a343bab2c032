// Timers due at the same time run in the order they were scheduled; an
// earlier deadline scheduled later still runs first.
'use strict';

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

for (const name of ['a', 'b', 'c', 'd', 'e']) {
  setTimeout(() => console.log('timer ' + name), 10);
}
setTimeout(() => console.log('timer early'), 2);
// Every timer is overdue when the first timers phase runs, so they all run
// in that phase whatever the clock did between the setTimeout calls.
busyWait(15);
