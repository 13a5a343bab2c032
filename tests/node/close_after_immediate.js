// A socket destroyed inside its 'data' callback reports 'close' in the close
// phase: after the microtask and after the immediate scheduled in that
// callback.
'use strict';
const net = require('net');

const server = net.createServer((socket) => {
  socket.on('data', () => {
    console.log('data received');
    setImmediate(() => console.log('immediate'));
    socket.destroy();
    process.nextTick(() => console.log('microtask'));
  });
  socket.on('close', () => {
    console.log('connection lost');
    server.close();
  });
});

server.listen(0, '127.0.0.1', () => {
  const client = net.connect(server.address().port, '127.0.0.1', () => client.write('x'));
  client.on('error', () => {});
});
