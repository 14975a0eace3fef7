// Peer pipeline: a node `ws` client writing one line per message to stdout, piped into `mosquitto_pub -l`.
'use strict';
const WebSocket = require('ws');

const NL = Buffer.from('\n');
const ws = new WebSocket(process.argv[2], { perMessageDeflate: false });
ws.on('message', (data) => {
  // ws 7 (the one Node-RED 4 pulls in) hands text frames over as strings, ws 8 as Buffers.
  process.stdout.write(typeof data === 'string' ? data + '\n' : Buffer.concat([data, NL]));
});
ws.on('close', () => process.exit(0));
ws.on('error', (err) => {
  console.error(`ws_pipe: ${err.message}`);
  process.exit(1);
});
