// Tells whether something accepts TCP connections on a loopback port, to wait for a proxy to come up.
import { connect } from 'node:net';

export function tcpReachable(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const sock = connect({ host, port });
    sock.once('connect', () => {
      sock.destroy();
      res(true);
    });
    sock.once('error', () => res(false));
  });
}
