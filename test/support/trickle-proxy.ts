// A slow server for the shared-store tests: a TCP proxy that passes requests
// through at once and hands the answers back a few bytes at a time.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TrickleProxy {
  private server?: Server;
  private sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly bytesPerTick = 8,
    private readonly tickMs = 100,
  ) {}

  start(): Promise<this> {
    this.server = createServer((client) => {
      const upstream = connect(this.targetPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const pending: Buffer[] = [];
      const timer = setInterval(() => {
        let left = this.bytesPerTick;
        while (left > 0 && pending.length) {
          const head = pending[0]!;
          const part = head.subarray(0, left);
          if (part.length === head.length) pending.shift();
          else pending[0] = head.subarray(left);
          left -= part.length;
          if (!client.destroyed) client.write(part);
        }
      }, this.tickMs);
      client.pipe(upstream);
      upstream.on('data', (d: Buffer) => pending.push(d));
      const end = () => {
        clearInterval(timer);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    return new Promise((resolve) =>
      this.server!.listen(0, '127.0.0.1', () => {
        this.port = (this.server!.address() as { port: number }).port;
        resolve(this);
      }),
    );
  }

  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
