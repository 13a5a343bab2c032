// The guide's global error handlers, and something for each to catch:
// `node error_handlers.mjs` throws from a timer, `node error_handlers.mjs
// rejection` leaves a rejected promise unhandled.
const logger = { error: (message, error) => console.error(message, error.message) };

process.on('uncaughtException', (error) => {
  logger.error('Uncaught Exception:', error);
  process.exit(1);
});

process.on('unhandledRejection', (reason) => {
  logger.error('Unhandled Rejection:', reason);
  process.exit(1);
});

if (process.argv[2] === 'rejection') {
  Promise.reject(new Error('nobody awaited me'));
} else {
  setTimeout(() => { throw new Error('boom'); }, 0);
}
setTimeout(() => console.log('still running'), 100);
