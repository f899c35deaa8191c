// The Prometheus endpoint: GET /metrics (text exposition) and /healthz, on metrics_addr:metrics_port.
import http from 'node:http';
import type net from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../log.ts';

export class MetricsServer {
  readonly registry = new Registry();
  private server: http.Server | null = null;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
    collectDefaultMetrics({ register: this.registry, prefix: 'pooler_' });
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    // A scraper that keeps its connection open must not hold shutdown up.
    server.keepAliveTimeout = 5000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error({ err: e.message }, 'metrics listener error'));
        const addr = server.address() as net.AddressInfo;
        this.log.info({ addr: addr.address, port: addr.port }, 'metrics listening');
        resolve(addr);
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      try {
        const body = await this.registry.metrics();
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      }
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
    this.server = null;
  }
}
