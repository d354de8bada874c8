#!/usr/bin/env node
// Ask/tell against the suggestion service from Node.js, straight from our .proto files.
//
//   node examples/node/ask_tell.js [address] [study]
//
// Prints one JSON summary line to stdout; diagnostics go to stderr.
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
const ADDRESS = process.argv[2] || process.env.TUNING_SUGGESTION_ADDRESS || '127.0.0.1:50051';
const STUDY = process.argv[3] || 'node-example';
const WORKER_ID = `node-${process.pid}`;
const DEADLINE_MS = 30_000;

const definition = protoLoader.loadSync('tuning/suggestion/v1/suggestion_service.proto', {
  includeDirs: [PROTOS],
  keepCase: true,
  // Trial ids are int64: strings keep every bit, where JS numbers would round past 2^53.
  // They are sent back to the server exactly as received.
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { SuggestionService } = grpc.loadPackageDefinition(definition).tuning.suggestion.v1;
const client = new SuggestionService(ADDRESS, grpc.credentials.createInsecure());

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Every RPC is documented as safe to retry on UNAVAILABLE (asks are deduplicated by
// request_id), so a retry resends the very same request object.
async function call(method, request, { retries = 4 } = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise((resolve, reject) => {
        client[method](request, { deadline: Date.now() + DEADLINE_MS }, (err, res) => (err ? reject(err) : resolve(res)));
      });
    } catch (err) {
      if (err.code !== grpc.status.UNAVAILABLE || attempt >= retries) throw err;
      await sleep(100 * 2 ** attempt);
    }
  }
}

// ParameterValue is a oneof: `kind` names the field that is set. int64 arrives as a string.
function plain(value) {
  const v = value[value.kind];
  return value.kind === 'int_value' ? Number(v) : v;
}

// A deterministic stand-in for training, so runs are reproducible and checkable.
function lossOf({ learning_rate, layers, optimizer }) {
  const penalty = { adam: 0, rmsprop: 0.1, sgd: 0.3 }[optimizer];
  return (Math.log10(learning_rate) + 2.5) ** 2 + 0.1 * Math.abs(layers - 4) + penalty;
}

const durationMs = (d) => (d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0);

const SPEC = {
  parameters: [
    { name: 'learning_rate', float_range: { low: 1e-5, high: 1e-1, scale: 'SCALE_LOG' } },
    { name: 'layers', int_range: { low: 1, high: 8, scale: 'SCALE_LINEAR' } },
    { name: 'optimizer', categorical: { choices: ['adam', 'sgd', 'rmsprop'].map((s) => ({ string_value: s })) } },
    { name: 'batch_size', fixed: { value: { int_value: 32 } } },
  ],
  objectives: [{ metric: 'loss', direction: 'DIRECTION_MINIMIZE' }],
  algorithm: { name: 'random' },
  seed: 7,
  max_trials: 8,
};

async function runTrial(trial) {
  const params = Object.fromEntries(Object.entries(trial.parameters).map(([k, v]) => [k, plain(v)]));
  const loss = lossOf(params);
  for (let step = 0; step < 3; step++) {
    // Lengthen the curve so intermediate values decrease towards the final loss.
    const metrics = [{ name: 'loss', value: loss + 0.1 * (3 - step) }];
    const { should_stop } = await call('ReportIntermediate', { trial_id: trial.id, worker_id: WORKER_ID, step, metrics });
    if (should_stop) {
      await call('CompleteTrial', { trial_id: trial.id, worker_id: WORKER_ID, outcome: 'OUTCOME_PRUNED' });
      return false;
    }
  }
  await call('CompleteTrial', {
    trial_id: trial.id, worker_id: WORKER_ID, outcome: 'OUTCOME_SUCCEEDED', metrics: [{ name: 'loss', value: loss }],
  });
  console.error(`trial ${trial.number} (id ${trial.id}) ${JSON.stringify(params)} -> loss ${loss.toFixed(4)}`);
  return true;
}

async function main() {
  const { created } = await call('CreateStudy', { name: STUDY, spec: SPEC });
  console.error(`${created ? 'created' : 'reusing'} study ${STUDY} at ${ADDRESS}`);

  let completed = 0;
  for (;;) {
    // A fresh request_id per ask; call() reuses it on retry so a lost answer never leases twice.
    const request = { study: STUDY, count: 1, worker_id: WORKER_ID, request_id: crypto.randomUUID() };
    const response = await call('SuggestTrials', request);
    for (const trial of response.trials) if (await runTrial(trial)) completed++;
    if (response.status === 'SUGGEST_STATUS_DONE') {
      console.error(`done: ${response.done_reason} (${response.message})`);
      break;
    }
    if (response.status === 'SUGGEST_STATUS_WAIT' && response.trials.length === 0) {
      await sleep(durationMs(response.retry_after) || 500);
    }
  }

  const { trials: best } = await call('GetBestTrials', { study: STUDY });
  const bestLoss = best.length ? best[0].metrics.find((m) => m.name === 'loss').value : null;
  console.log(JSON.stringify({
    study: STUDY, completed, best_trial_id: best.length ? best[0].id : null, best_loss: bestLoss,
  }));

  // Errors are ordinary gRPC statuses; the code is the contract, not the message text.
  try {
    await call('GetStudy', { name: `${STUDY}-does-not-exist-${crypto.randomUUID()}` });
    throw new Error('GetStudy on a missing study unexpectedly succeeded');
  } catch (err) {
    if (err.code !== grpc.status.NOT_FOUND) throw err;
    console.error(`GetStudy(missing) -> ${grpc.status[err.code]}: ${err.details}`);
  }
}

main()
  .then(() => client.close())
  .catch((err) => {
    const code = err.code !== undefined ? `${grpc.status[err.code]}: ` : '';
    console.error(`error: ${code}${err.details || err.stack || err}`);
    client.close();
    process.exitCode = 1;
  });
