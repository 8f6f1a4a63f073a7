// A real S3-compatible server on 127.0.0.1 for tests and benchmarks: s3rver (the S3 REST API over
// a folder), behind a front that checks every request's AWS Signature V4 against the secret
// (s3rver itself takes any v4 signature): a request signed wrong is answered 403
// SignatureDoesNotMatch, as S3 would. The check is written here from AWS's specification, apart
// from the signer the client uses. Run as its own process, so the CLI under test can be run
// synchronously: prints `port <n>` once it listens, stops on SIGTERM.
//   node --import tsx test/helpers/s3-server.ts [--no-verify] <folder> <bucket>...
// (--no-verify: s3rver alone, for benchmarks, where the front's own cost would be in every figure)
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import S3rver from 's3rver';

/** s3rver's fixed credentials. */
export const ACCESS_KEY = 'S3RVER';
export const SECRET = 'S3RVER';

const rfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** Why a request's SigV4 signature is wrong, or undefined when it is right (or unsigned: s3rver decides). */
export function signatureProblem(req: http.IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (!auth) return undefined;
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return `not a SigV4 header: ${auth}`;
  const [, key, day, region, signedHeaders, signature] = m;
  if (key !== ACCESS_KEY) return undefined; // s3rver answers InvalidAccessKeyId itself
  const url = new URL(req.url!, 'http://x');
  // The canonical URI is the path as sent (S3 does not encode it again).
  const query = [...url.searchParams].map(([k, v]) => [rfc3986(k), rfc3986(v)]).sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : a[1]! < b[1]! ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&');
  const headers = signedHeaders!.split(';').map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, url.pathname, query, headers, signedHeaders, String(req.headers['x-amz-content-sha256'] ?? '')].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', String(req.headers['x-amz-date']), scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${SECRET}`, day!), region!), 's3'), 'aws4_request');
  return hmac(signingKey, toSign).toString('hex') === signature ? undefined : `signature mismatch for ${req.method} ${req.url}`;
}

const args = process.argv.slice(2);
const verify = args[0] !== '--no-verify';
const [dir, ...buckets] = verify ? args : args.slice(1);
if (process.argv[1]?.endsWith('s3-server.ts')) {
  if (!dir || !buckets.length) {
    process.stderr.write('usage: s3-server.ts <folder> <bucket>...\n');
    process.exit(2);
  }
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: buckets.map((name) => ({ name })) });
  const inner = await server.run();
  if (!verify) {
    process.stdout.write(`port ${inner.port}\n`);
    process.on('SIGTERM', () => void server.close().finally(() => process.exit(0)));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  if (!verify) await new Promise(() => undefined);
  const front = http.createServer((req, res) => {
    const problem = signatureProblem(req);
    if (problem) {
      process.stderr.write(`s3-server: refused ${problem}\n`);
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>${problem}</Message></Error>`);
      return;
    }
    const fwd = http.request({ host: '127.0.0.1', port: inner.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  front.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  process.stdout.write(`port ${(front.address() as { port: number }).port}\n`);
  const stop = () => {
    front.close();
    agent.destroy();
    void server.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
