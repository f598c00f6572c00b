"""Stand-in for the Kafka UI image (kafbat/kafka-ui, a Spring Boot application from Docker
Hub): it serves what the chart uses of it, the health endpoint its probes call and a page on
SERVER_PORT, and says on that page that it is a stand-in listing the Kafka cluster it was
given. It does not browse topics."""

import http.server
import json
import os

CLUSTER = os.environ.get("KAFKA_CLUSTERS_0_NAME", "")
BOOTSTRAP = os.environ.get("KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS", "")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.path == "/actuator/health":
            body, kind = json.dumps({"status": "UP"}).encode(), "application/json"
        else:
            body = (f"<h1>Kafka UI stand-in</h1><p>cluster {CLUSTER}: {BOOTSTRAP}</p>"
                    "<p>molstream's end-to-end suite runs this in place of kafbat/kafka-ui."
                    "</p>").encode()
            kind = "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("", int(os.environ.get("SERVER_PORT", "8080"))),
                                Handler).serve_forever()
