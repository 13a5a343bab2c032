// The guide's compose(), in JavaScript, with three middlewares written the
// Express way: plain functions that call next() and a final (req, res) handler.
function compose(middlewares) {
  return (req, res) => {
    let index = 0;

    function next() {
      if (index < middlewares.length) {
        const mw = middlewares[index++];
        mw(req, res, next);
      }
    }

    next();
  };
}

const logger = (req, res, next) => {
  console.log(`${req.method} ${req.url}`);
  next();
};

const auth = (req, res, next) => {
  req.user = req.headers.authorization === 'Bearer secret' ? 'ada' : null;
  next();
};

const handler = (req, res) => {
  res.body = req.user ? `hello ${req.user}` : 'who are you?';
  console.log(`-> ${res.body}`);
};

const app = compose([logger, auth, handler]);
app({ method: 'GET', url: '/', headers: { authorization: 'Bearer secret' } }, {});
app({ method: 'GET', url: '/private', headers: {} }, {});
