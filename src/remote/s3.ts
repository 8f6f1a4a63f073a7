// A remote cache in an S3-compatible bucket (AWS S3, MinIO, Ceph, s3rver). Credentials come from
// the AWS SDK's standard chain (environment, AWS_PROFILE and ~/.aws, SSO, instance roles): never
// from the spec or the remote's config, never written anywhere by this tool. An object PUT is
// atomic in S3 (a reader sees all of it or none), multipart uploads included: a part-way upload is
// invisible until completed.
//
// Requests: each listing page and each object is one request signed with the SDK's own SigV4
// signer and sent over a keep-alive agent. The SDK client's middleware stack costs about a
// millisecond of CPU per request (and 0.17 s to load): on a small machine that halved the rate for
// a cache's many small objects and put a push with nothing new over 0.5 s. The client is loaded only
// where it earns its keep: multipart uploads (@aws-sdk/lib-storage), and the credentials chain
// when the environment does not hold a key pair itself (the chain's own first link).
import { createHash, createHmac } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SignatureV4 } from '@smithy/signature-v4';
import { BadObject, RemoteError, type Listing, type Remote } from './remote.ts';

/** Objects at least this large go in parts, PART_SIZE each, up to PART_QUEUE parts of one object at once. */
export const MULTIPART_FROM = 16 << 20;
const PART_SIZE = 8 << 20;
const PART_QUEUE = 4;
const ATTEMPTS = 4;

export interface S3Location {
  bucket: string;
  /** Inside the bucket, '' or ending in '/'. */
  prefix: string;
  /** An S3-compatible server's URL (path-style addressing); AWS itself when absent. */
  endpoint?: string;
  region?: string;
}

/** `s3://bucket/some/prefix` -> bucket and prefix; a URL with credentials in it is refused. */
export function parseS3Url(url: string): Pick<S3Location, 'bucket' | 'prefix'> {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) throw new RemoteError(`'${url}' is not an S3 URL (s3://bucket/prefix)`);
  if (m[1]!.includes('@') || m[1]!.includes(':')) throw new RemoteError(`the S3 URL names credentials or a port: give the bucket only (s3://bucket/prefix), the server with --endpoint, and credentials through the AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials)`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: m[1]!, prefix: prefix ? `${prefix}/` : '' };
}

const bytesOf = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array => (typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));

/** SHA-256 and HMAC-SHA-256 from node:crypto, in the shape the SDK's signer takes. */
class NodeSha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

/** A path segment as S3 signs it (RFC 3986 unreserved characters kept). */
const encodeSegment = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const unescapeXml = (s: string): string => s.replace(/&(lt|gt|quot|apos|amp|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e.toLowerCase()] ?? String.fromCodePoint(e[1]?.toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));

/** Failures worth another try: the connection, or the server busy or failing for a moment. */
const TRANSIENT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'SHORT_BODY']);

interface Answer {
  status: number;
  body?: Buffer;
  code?: string;
}

interface RequestOptions {
  query?: Record<string, string>;
  body?: { bytes: Uint8Array } | { file: string; size: number };
  to?: { dest: string; onBytes: (n: number) => void };
  range?: string;
  /** The most bytes the answer may hold: a longer one is cut off and refused (a BadObject). */
  max?: number;
}

/** Thrown inside a request whose answer ran past its `max`: not retried, said as a BadObject. */
class TooLarge extends Error {}

type Credentials = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** The SDK client, loaded on first need (multipart uploads, the credentials chain past the environment). */
async function loadClient(loc: S3Location, region: string) {
  // The SDK warns at first use that its releases after 2027-01 need Node 22; the engine supports Node 20.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sdk = await import('@aws-sdk/client-s3');
  return new sdk.S3Client({
    ...(loc.endpoint ? { endpoint: loc.endpoint, forcePathStyle: true } : {}),
    region,
    // Our own digest is checked on arrival; the SDK's extra CRC headers only where an operation
    // needs them, which S3-compatible servers that predate them accept.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: ATTEMPTS,
  });
}

export class S3Remote implements Remote {
  private readonly region: string;
  private readonly signer: SignatureV4;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private client: Promise<Awaited<ReturnType<typeof loadClient>>> | undefined;

  constructor(readonly loc: S3Location) {
    this.region = loc.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    this.signer = new SignatureV4({ service: 's3', region: this.region, credentials: () => this.credentials(), sha256: NodeSha256, uriEscapePath: false, applyChecksum: false });
    // Path-style on a custom endpoint (and for dotted bucket names on AWS, which TLS cannot name); virtual-hosted on AWS.
    this.base = loc.endpoint ? new URL(`${loc.endpoint.replace(/\/+$/, '')}/${encodeSegment(loc.bucket)}/`) : loc.bucket.includes('.') ? new URL(`https://s3.${this.region}.amazonaws.com/${encodeSegment(loc.bucket)}/`) : new URL(`https://${loc.bucket}.s3.${this.region}.amazonaws.com/`);
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 64 }) : new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  get where(): string {
    return `s3://${this.loc.bucket}/${this.loc.prefix}${this.loc.endpoint ? ` at ${this.loc.endpoint}` : ''}`;
  }

  private sdkClient() {
    return (this.client ??= loadClient(this.loc, this.region));
  }

  /** The chain's first link read here (a key pair in the environment, unless AWS_PROFILE picks a profile); the SDK's chain otherwise. */
  private async credentials(): Promise<Credentials> {
    const env = process.env;
    if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY && !env.AWS_PROFILE) return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
    return (await this.sdkClient()).config.credentials();
  }

  private key(name: string): string {
    return this.loc.prefix + name;
  }

  private objectPath(name: string): string {
    return `${this.base.pathname}${this.key(name).split('/').map(encodeSegment).join('/')}`;
  }

  async list(prefix: string): Promise<Listing> {
    const out: Listing = new Map();
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix: this.key(prefix), ...(token ? { 'continuation-token': token } : {}) };
      const res = await this.request('GET', this.base.pathname, `list ${prefix}`, { query });
      const xml = res.body!.toString('utf8');
      for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const key = /<Key>([\s\S]*?)<\/Key>/.exec(m[1]!)?.[1];
        const size = /<Size>(\d+)<\/Size>/.exec(m[1]!)?.[1];
        if (key !== undefined) out.set(unescapeXml(key).slice(this.loc.prefix.length), Number(size ?? 0));
      }
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? unescapeXml(/<NextContinuationToken>([\s\S]*?)<\/NextContinuationToken>/.exec(xml)?.[1] ?? '') || undefined : undefined;
    } while (token);
    return out;
  }

  async put(name: string, file: string, size: number, onBytes: (n: number) => void): Promise<void> {
    if (size < MULTIPART_FROM) {
      await this.request('PUT', this.objectPath(name), `send ${name}`, { body: { file, size } });
      onBytes(size);
      return;
    }
    const { Upload } = await import('@aws-sdk/lib-storage');
    const upload = new Upload({ client: await this.sdkClient(), params: { Bucket: this.loc.bucket, Key: this.key(name), Body: createReadStream(file) }, partSize: PART_SIZE, queueSize: PART_QUEUE, leavePartsOnError: false });
    let sent = 0;
    upload.on('httpUploadProgress', (p) => {
      if (p.loaded !== undefined && p.loaded > sent) {
        onBytes(p.loaded - sent);
        sent = p.loaded;
      }
    });
    try {
      await upload.done();
    } catch (e) {
      const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      throw new RemoteError(`${this.where}: cannot send ${name}: ${s3Problem(err, this.loc)}`);
    }
    if (size > sent) onBytes(size - sent);
  }

  async putBytes(name: string, body: Uint8Array): Promise<void> {
    await this.request('PUT', this.objectPath(name), `send ${name}`, { body: { bytes: body } });
  }

  async get(name: string, dest: string, onBytes: (n: number) => void, max: number): Promise<boolean> {
    const res = await this.request('GET', this.objectPath(name), `fetch ${name}`, { to: { dest, onBytes }, max });
    return res.status !== 404;
  }

  async getBytes(name: string, max: number): Promise<Buffer | undefined> {
    const res = await this.request('GET', this.objectPath(name), `fetch ${name}`, { max });
    return res.status === 404 ? undefined : res.body;
  }

  async remove(name: string): Promise<void> {
    await this.request('DELETE', this.objectPath(name), `delete ${name}`);
  }

  async getRange(name: string, start: number, end: number): Promise<Buffer | undefined> {
    const res = await this.request('GET', this.objectPath(name), `fetch ${name}`, { range: `bytes=${start}-${end - 1}` });
    if (res.status === 404) return undefined;
    // A server that ignores Range answers the whole object (200): cut here.
    return res.status === 206 ? res.body : res.body!.subarray(start, end);
  }

  close(): void {
    this.agent.destroy();
    void this.client?.then((c) => c.destroy());
  }

  /**
   * One signed request, tried up to ATTEMPTS times on transient failures (connection, 5xx, 429).
   * A GET of a missing object answers status 404; any other failure is a RemoteError in the user's
   * terms. `to`: the answer's body is streamed into a file instead of memory; `range`: a Range header.
   */
  private async request(method: 'GET' | 'PUT' | 'DELETE', path: string, what: string, opts: RequestOptions = {}): Promise<Answer> {
    const { query = {}, body, to, range, max } = opts;
    for (let attempt = 1; ; attempt++) {
      let res: Answer;
      try {
        const length = body ? ('bytes' in body ? body.bytes.length : body.size) : undefined;
        const signed = await this.signer.sign({
          method,
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port ? Number(this.base.port) : undefined,
          path,
          query,
          headers: { host: this.base.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...(length !== undefined ? { 'content-length': String(length) } : {}), ...(range ? { range } : {}) },
        } as never);
        // Encoded as the signer canonicalizes it (RFC 3986: a space is %20, never '+').
        const qs = Object.entries(query).map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`).join('&');
        res = await this.send(method, qs ? `${path}?${qs}` : path, (signed as unknown as { headers: Record<string, string> }).headers, body, to, max);
      } catch (e) {
        if (e instanceof TooLarge) throw new BadObject(`${what.replace(/^fetch /, '')} on ${this.where} ${e.message}: refused`);
        const code = (e as NodeJS.ErrnoException).code ?? (e as Error).name;
        if (TRANSIENT.has(code) && attempt < ATTEMPTS) {
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
          continue;
        }
        throw new RemoteError(`${this.where}: cannot ${what}: ${s3Problem({ name: code, code, message: (e as Error).message }, this.loc)}`);
      }
      if (res.status >= 200 && res.status < 300) return res;
      if (method === 'GET' && res.status === 404 && res.code !== 'NoSuchBucket' && path !== this.base.pathname) return res;
      if ((res.status >= 500 || res.status === 429) && attempt < ATTEMPTS) {
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        continue;
      }
      throw new RemoteError(`${this.where}: cannot ${what}: ${s3Problem({ name: res.code, message: `HTTP ${res.status}`, $metadata: { httpStatusCode: res.status } }, this.loc)}`);
    }
  }

  private send(method: string, path: string, headers: Record<string, string>, body: RequestOptions['body'], to: RequestOptions['to'], max = Infinity): Promise<Answer> {
    const lib = this.base.protocol === 'https:' ? https : http;
    return new Promise<Answer>((resolve, reject) => {
      const req = lib.request({ method, hostname: this.base.hostname, port: this.base.port || undefined, path, headers, agent: this.agent, timeout: 120_000 }, (res) => {
        const status = res.statusCode ?? 0;
        const declared = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
        // An answer longer than the caller allows is not read (a hostile remote could send without end).
        const tooLarge = (n: number) => {
          req.destroy();
          res.destroy();
          reject(new TooLarge(`holds ${n} bytes or more, more than the ${max} it may`));
        };
        if (status >= 200 && status < 300 && declared !== undefined && declared > max) return tooLarge(declared);
        if (to && status >= 200 && status < 300) {
          // Streamed into the file; the caller hashes it (a short body is caught there, and here).
          let got = 0;
          res.on('data', (c: Buffer) => {
            got += c.length;
            if (got > max) return tooLarge(got);
            to.onBytes(c.length);
          });
          pipeline(res as Readable, createWriteStream(to.dest, { flags: 'wx' })).then(() => (declared !== undefined && got !== declared ? reject(Object.assign(new Error('the answer ended early'), { code: 'SHORT_BODY' })) : resolve({ status })), reject);
          return;
        }
        const chunks: Buffer[] = [];
        let got = 0;
        res.on('data', (c: Buffer) => {
          got += c.length;
          if (status < 300 && got > max) return tooLarge(got);
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const data = Buffer.concat(chunks);
          if (status < 300 && declared !== undefined && declared !== data.length) return reject(Object.assign(new Error('the answer ended early'), { code: 'SHORT_BODY' }));
          resolve({ status, body: data, code: status >= 300 ? /<Code>([^<]+)<\/Code>/.exec(data.toString('utf8'))?.[1] : undefined });
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('no answer for 120 s'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      if (body && 'file' in body) {
        pipeline(createReadStream(body.file), req).catch(reject);
      } else req.end(body?.bytes);
    }).catch(async (e: unknown) => {
      // A retried streamed GET starts its file again.
      if (to) await rm(to.dest, { force: true });
      throw e;
    });
  }
}

/** What an S3 failure means for the user, and what to do. */
function s3Problem(err: { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } }, loc: S3Location): string {
  const name = err.name ?? err.code ?? '';
  if (name === 'NoSuchBucket') return `the bucket '${loc.bucket}' does not exist: create it, or fix the remote's URL`;
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(err.message ?? '')) return 'no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials';
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'ExpiredToken'].includes(name) || err.$metadata?.httpStatusCode === 403) return `the server refused the credentials (${name || 'HTTP 403'}): check AWS_ACCESS_KEY_ID / AWS_PROFILE and the bucket's policy`;
  if (['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(err.code ?? name)) return `cannot reach ${loc.endpoint ?? 'AWS S3'} (${err.code ?? name}): is the server up and the endpoint right?`;
  return `${name || 'error'}: ${(err.message ?? '').split('\n')[0]}`;
}
