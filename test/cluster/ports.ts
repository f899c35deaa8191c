// Picks a free loopback TCP port for a test server to listen on.
import { createServer } from 'node:net';

// Ports other services on developer machines and CI hosts own; never hand them out.
const RESERVED = new Set([5432, 6432, 9127]);

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !RESERVED.has(port)) return port;
  }
}
