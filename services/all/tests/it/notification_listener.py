"""A real oslo.messaging notification listener for the notification tests.

Usage: notification_listener.py TRANSPORT_URL EXCHANGE TOPIC [TOPIC ...]

Prints `READY` once its queues are bound, then one JSON line per
notification it receives: {"topic", "priority", "publisher_id",
"event_type", "payload", "ctxt"}. Stops when its standard input closes.
"""

import json
import sys
import threading

from oslo_config import cfg
import oslo_messaging


def main():
    url, exchange, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
    conf = cfg.ConfigOpts()
    conf([], project="nova-rs-test")
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    lock = threading.Lock()

    def endpoint(topic):
        class Endpoint:
            def __getattr__(self, priority):
                if priority not in ("audit", "debug", "info", "warn", "error",
                                    "critical", "sample"):
                    raise AttributeError(priority)

                def handle(ctxt, publisher_id, event_type, payload, metadata):
                    line = json.dumps({
                        "topic": topic,
                        "priority": priority.upper(),
                        "publisher_id": publisher_id,
                        "event_type": event_type,
                        "payload": payload,
                        "ctxt": ctxt,
                    })
                    with lock:
                        print(line, flush=True)
                return handle
        return Endpoint()

    listeners = []
    for topic in topics:
        target = oslo_messaging.Target(topic=topic, exchange=exchange)
        listener = oslo_messaging.get_notification_listener(
            transport, [target], [endpoint(topic)], executor="threading")
        listener.start()
        listeners.append(listener)
    print("READY", flush=True)
    sys.stdin.read()
    for listener in listeners:
        listener.stop()
        listener.wait()
    transport.cleanup()


if __name__ == "__main__":
    main()
