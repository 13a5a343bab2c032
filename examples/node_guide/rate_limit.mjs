import express from 'express';
import rateLimit from 'express-rate-limit';

const app = express();

const limiter = rateLimit({
  windowMs: 15 * 60 * 1000,
  max: 100,
  message: 'Too many requests',
});

app.use('/api/', limiter);

app.get('/api/notes', (req, res) => {
  res.json([{ id: 1, title: 'first' }]);
});

app.get('/health', (req, res) => {
  res.send('ok');
});

app.listen(Number(process.env.PORT || 3000));
