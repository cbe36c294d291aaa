'use strict';
// Starts the built alicom-emu binary for the Node MNS real-SDK suite: the POP suite's launcher
// (tests/sdk/node/test/emulator.js: same binary, config, ready-file and SIGTERM checks) plus the
// MNS fields. `emu.mnsEndpoint` is undefined when the binary has no MNS service (the suite
// then skips).

const pop = require('../../../node/test/emulator.js');

async function startEmulator() {
  const emu = await pop.startEmulator();
  const { info } = emu;
  return {
    ...emu,
    mnsEndpoint: info.mns ? info.mns.replace(/\/$/, '') : undefined,
    popEndpoint: info.pop ? info.pop.replace(/\/$/, '') : undefined,
    uid: info.uid || '1234567890123456',
  };
}

module.exports = { startEmulator };
