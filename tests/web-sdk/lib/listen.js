'use strict';
// One way for the suite's little HTTP servers (the SDK harness, the video client's page server,
// the customer-callback stand-in) to listen: 127.0.0.1 on a free port, closed with every
// connection it still has.

async function listenLocal(server) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

module.exports = { listenLocal };
