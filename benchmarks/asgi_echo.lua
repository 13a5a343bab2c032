-- wrk script of benchmarks.asgi: POST /echo with a JSON body (an Order).
wrk.method = "POST"
wrk.path = "/echo"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id": 42, "customer": "Ada Lovelace", "items": ["notebook", "pencil", "lamp"], "total": 19.5}'
