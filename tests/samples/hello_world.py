"""Hello World with call_soon(): schedule a callback, then stop the loop."""
import asyncio


def hello_world(loop, name):
    print(f"Hello {name}")
    loop.stop()


loop = asyncio.new_event_loop()
loop.call_soon(hello_world, loop, "World")
try:
    loop.run_forever()  # stopped by hello_world()
finally:
    loop.close()
print("closed:", loop.is_closed())


async def main():
    # The same with asyncio.run(): a callback completes a future.
    loop = asyncio.get_running_loop()
    greeted = loop.create_future()
    loop.call_soon(greeted.set_result, "Hello again")
    print(await greeted)


asyncio.run(main())
