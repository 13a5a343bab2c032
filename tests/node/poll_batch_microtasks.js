// Node runs the microtasks an I/O callback queued before the next I/O
// callback, even one that became ready in the same poll.
'use strict';
const net = require('net');

let closed = 0;
const server = net.createServer((socket) => {
  socket.once('data', (data) => {
    const name = data.toString();
    console.log(`${name}: data`);
    process.nextTick(() => console.log(`${name}: microtask`));
    socket.end();
    if (++closed === 2) server.close();
  });
});

server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const a = net.connect(port, '127.0.0.1', () => {
    a.write('a', () => {
      const b = net.connect(port, '127.0.0.1', () => b.write('b'));
      b.on('error', () => {});
    });
  });
  a.on('error', () => {});
});
