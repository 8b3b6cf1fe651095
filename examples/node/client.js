// A Node client of the NAS cost oracle: loads the service from ../../proto (self-contained: the
// google/rpc/status.proto it imports is shipped there; google/protobuf/any.proto comes with
// protobufjs), asks GetServerInfo and GetCost, and prints one JSON line.
//
//   npm install && node client.js 127.0.0.1:50051 [efficientnet_b0]
"use strict";
const path = require("path");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const address = process.argv[2] || "127.0.0.1:50051";
const name = process.argv[3] || "efficientnet_b0";
const protoDir = path.resolve(__dirname, "..", "..", "proto");
const def = loader.loadSync(path.join(protoDir, "costoracle/v1/oracle.proto"), {
  includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const { CostOracle } = grpc.loadPackageDefinition(def).costoracle.v1;
const client = new CostOracle(address, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + 60000);

client.GetServerInfo({}, { deadline: deadline() }, (err, info) => {
  if (err) { console.error(`GetServerInfo: ${err.code} ${err.details}`); process.exit(1); }
  client.GetCost({ candidate: { builtin: name }, detail: "DETAIL_SCALARS" }, { deadline: deadline() }, (err2, resp) => {
    if (err2) { console.error(`GetCost: ${err2.code} ${err2.details}`); process.exit(1); }
    const r = resp.report;
    console.log(JSON.stringify({ server_version: info.server_version, candidate: r.candidate, macs: r.macs,
                                 params: r.params, cache_key: r.cache_key }));
    client.close();
  });
});
