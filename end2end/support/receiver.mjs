#!/usr/bin/env node
// receiver.mjs — a loopback HTTP receiver for the portal's notifications in the
// browser tests (the Rust tests run their own in server/tests/api/notifications.rs).
// Every POST is kept (path, headers, body) and answered 200; GET /received lists them
// as JSON. Usage: node receiver.mjs --port PORT
import http from "node:http";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1] || 0);
const received = [];

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/received") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(received));
    return;
  }
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => { body += chunk; });
  req.on("end", () => {
    received.push({ path: req.url, headers: req.headers, body });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
});

server.listen(port, "127.0.0.1", () => {
  console.log(`RECEIVER=http://127.0.0.1:${server.address().port}`);
});
