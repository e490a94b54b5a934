// The proxy's tests' upstream in Node's standard library, the twin of upstream.py: it records
// exactly what it received (method, path, headers, body bytes) as one JSON line per request,
// and answers by path: /status/NNN/... with NNN, anything else 200.
"use strict";
const fs = require("fs");
const http = require("http");

const record = process.argv[2];
const port = Number(process.argv[3] || 0);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    }
    const entry = {
      method: req.method,
      path: req.url,
      headers,
      body: Buffer.concat(chunks).toString("base64"),
    };
    fs.appendFileSync(record, JSON.stringify(entry) + "\n");
    const parts = req.url.split("/");
    let status = 200;
    let reply = "upstream ok";
    if (parts.length > 2 && parts[1] === "status") {
      status = Number(parts[2]);
      reply = "upstream says " + parts[2];
    }
    res.writeHead(status, {
      "Content-Type": "text/plain",
      "X-Upstream": "node",
      "Content-Length": Buffer.byteLength(reply),
    });
    res.end(reply);
  });
});
server.listen(port, "127.0.0.1", () => {
  console.log("listening " + server.address().port);
});
