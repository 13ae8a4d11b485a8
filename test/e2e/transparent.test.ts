// Transparent interception as the kernel sees it: three pods as network
// namespaces on a bridge, each with an agent running as UID 1337 behind the
// rules of `palisade init-iptables`, and a CA in a fourth namespace. It
// guarantees that an unmodified HTTP client in pod A reaches pod B by B's IP
// and application port, that only TLS crosses the wire (the plaintext body
// never appears in a capture of B's link), and that pod C, outside B's allow
// list, is refused while B's agent logs `policy.denied` and counts it. Every
// address lives inside namespaces the test creates and removes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';

const MAIN = resolve('dist/agent/cli/main.js');
const TD = 'e2e.test';
const SUBNET = '10.213.0';
const PROXY_UID = '1337';
const APP_UID = '1001';
const APP_PORT = 8080;
const CA_ADDR = `${SUBNET}.1:15112`;
const PASSPHRASE = 'e2e-passphrase-not-secret';

const missing = ['ip', 'iptables', 'setpriv', 'tcpdump'].filter(
  (bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0,
);
if (process.getuid?.() !== 0) {
  t.plan(0, 'skipped: needs root to create network namespaces and iptables rules');
} else if (missing.length > 0) {
  t.plan(0, `skipped: missing ${missing.join(', ')} (install iproute2, iptables, tcpdump)`);
} else if (!existsSync(MAIN)) {
  t.plan(0, 'skipped: build first (npm run build)');
} else {
  await runScenario();
}

async function runScenario(): Promise<void> {
  const tag = `pal-${process.pid}`;
  const hub = `${tag}-hub`;
  const pods = {
    a: { ns: `${tag}-a`, ip: `${SUBNET}.2`, sa: 'a' },
    b: { ns: `${tag}-b`, ip: `${SUBNET}.3`, sa: 'b' },
    c: { ns: `${tag}-c`, ip: `${SUBNET}.4`, sa: 'c' },
  };
  const idOf = (sa: string) => `spiffe://${TD}/ns/shop/sa/${sa}`;
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'palisade-e2e-'));
  chmodSync(dir, 0o755);
  const caEnv = { ...process.env, PALISADE_CA_PASSPHRASE: PASSPHRASE };
  let isClean = false;
  const cleanUp = () => {
    if (isClean) return;
    isClean = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const ns of [hub, ...Object.values(pods).map((p) => p.ns)]) {
      spawnSync('ip', ['netns', 'del', ns]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Also on a crash: the namespaces and processes must never outlive the test.
  process.once('exit', cleanUp);
  t.teardown(cleanUp);
  try {
    await scenario();
  } catch (err) {
    t.fail(`scenario failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    cleanUp();
  }

  async function scenario(): Promise<void> {
    const started = Date.now();
    sh('ip', 'netns', 'add', hub);
    sh('ip', 'netns', 'exec', hub, 'ip', 'link', 'set', 'lo', 'up');
    sh('ip', 'netns', 'exec', hub, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    sh('ip', 'netns', 'exec', hub, 'ip', 'addr', 'add', `${SUBNET}.1/24`, 'dev', 'br0');
    sh('ip', 'netns', 'exec', hub, 'ip', 'link', 'set', 'br0', 'up');
    for (const [name, pod] of Object.entries(pods)) {
      const hubSide = `v${name}`;
      sh('ip', 'netns', 'add', pod.ns);
      sh('ip', 'link', 'add', 'eth0', 'netns', pod.ns, 'type', 'veth', 'peer', 'name', hubSide);
      sh('ip', 'link', 'set', hubSide, 'netns', hub);
      sh('ip', 'netns', 'exec', hub, 'ip', 'link', 'set', hubSide, 'master', 'br0', 'up');
      sh('ip', 'netns', 'exec', pod.ns, 'ip', 'link', 'set', 'lo', 'up');
      sh('ip', 'netns', 'exec', pod.ns, 'ip', 'addr', 'add', `${pod.ip}/24`, 'dev', 'eth0');
      sh('ip', 'netns', 'exec', pod.ns, 'ip', 'link', 'set', 'eth0', 'up');
      sh('ip', 'netns', 'exec', pod.ns, process.execPath, MAIN, 'init-iptables');
    }

    const caDir = join(dir, 'ca');
    sh(process.execPath, MAIN, 'ca', 'init', '--dir', caDir, '--trust-domain', TD);
    const bundle = join(dir, 'bundle.pem');
    copyFileSync(join(caDir, 'bundle.pem'), bundle);
    chmodSync(bundle, 0o644);
    const ca = start(hub, undefined, ['ca', 'serve', '--dir', caDir, '--listen', CA_ADDR], caEnv);
    await until(() => ca.lines.some((l) => l.includes('"ca.started"')), 10_000, 'CA start');

    const agents: Record<string, ReturnType<typeof start>> = {};
    for (const [name, pod] of Object.entries(pods)) {
      const token = sh(
        'ip',
        'netns',
        'exec',
        hub,
        process.execPath,
        MAIN,
        'ca',
        'token',
        'create',
        '--dir',
        caDir,
        '--ca-addr',
        CA_ADDR,
        '--id',
        idOf(pod.sa),
      ).trim();
      const flags = ['agent', '--ca-addr', CA_ADDR, '--ca-bundle', bundle, '--id', idOf(pod.sa)];
      flags.push('--mesh-cidrs', `${SUBNET}.0/24`);
      if (name === 'b') flags.push('--allow', 'ns/shop/sa/a');
      agents[name] = start(pod.ns, PROXY_UID, flags, {
        ...process.env,
        PALISADE_JOIN_TOKEN: token,
      });
    }
    for (const [name, agent] of Object.entries(agents)) {
      await until(
        () => agent.lines.some((l) => l.includes('"agent.ready"')),
        15_000,
        `agent ${name}`,
      );
    }

    const secret = `palisade-e2e-${randomBytes(12).toString('hex')}`;
    const app = start(
      pods.b.ns,
      APP_UID,
      [
        '-e',
        `require('http').createServer((q, s) => s.end('hello from b ' + process.env.SECRET)).listen(${APP_PORT}, () => console.log('listening'))`,
      ],
      { ...process.env, SECRET: secret },
      false,
    );
    await until(() => app.lines.includes('listening'), 10_000, 'app b');

    const capture = startCapture(pods.b.ns, 'eth0');
    await until(() => capture.ready(), 10_000, 'tcpdump');

    await t.test(
      'an unmodified client in pod A gets B’s answer at B’s IP and app port',
      async (t) => {
        const answer = await httpGet(pods.a.ns, `http://${pods.b.ip}:${APP_PORT}/`);
        t.equal(answer.body, `hello from b ${secret}`);
        const bLog = agents['b']?.lines.join('\n') ?? '';
        t.notMatch(bLog, /"event":"policy.denied"[^\n]*sa\/a"/, 'A was admitted');
      },
    );

    await t.test('the wire between the pods carries TLS records, not the body', async (t) => {
      // Let tcpdump drain what the kernel already queued before stopping it.
      await new Promise((r) => setTimeout(r, 300));
      const pcap = await capture.stop();
      t.comment(`capture: ${pcap.length} bytes`);
      t.ok(pcap.length > 24, 'the capture saw packets, not just its header');
      t.equal(pcap.indexOf(secret), -1, 'the plaintext body is not on the wire');
      t.not(pcap.indexOf(Buffer.from([0x17, 0x03, 0x03])), -1, 'TLS application data records');
      t.not(pcap.indexOf(Buffer.from([0x16, 0x03])), -1, 'TLS handshake records');
    });

    await t.test('pod C, not on B’s allow list, is refused, logged and counted', async (t) => {
      const answer = await httpGet(pods.c.ns, `http://${pods.b.ip}:${APP_PORT}/`);
      t.not(answer.body, `hello from b ${secret}`, 'C gets no answer from B');
      const b = agents['b'];
      const denied = () =>
        (b?.lines ?? []).some(
          (l) => l.includes('"event":"policy.denied"') && l.includes(`"peer_id":"${idOf('c')}"`),
        );
      await until(denied, 5_000, 'policy.denied in B’s log').catch(() => undefined);
      t.ok(denied(), 'B’s agent logs policy.denied with C’s identity');
      const metrics = sh(
        'ip',
        'netns',
        'exec',
        pods.b.ns,
        process.execPath,
        '-e',
        "fetch('http://127.0.0.1:15120/metrics').then((r) => r.text()).then((s) => process.stdout.write(s))",
      );
      t.match(
        metrics,
        `palisade_agent_policy_denials_total{peer_id="${idOf('c')}",reason="not-in-allow-list",dry_run="false"} 1`,
      );
    });

    t.comment(`transparent e2e took ${Date.now() - started} ms`);
  }

  function sh(command: string, ...args: string[]): string {
    const result = spawnSync(command, args, { encoding: 'utf8', env: caEnv });
    if (result.status !== 0) {
      throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}${result.error ?? ''}`);
    }
    return result.stdout;
  }

  function start(
    ns: string,
    uid: string | undefined,
    args: string[],
    env: NodeJS.ProcessEnv,
    isPalisade = true,
  ): { child: ChildProcess; lines: string[] } {
    const asUser = uid ? ['setpriv', '--reuid', uid, '--regid', uid, '--clear-groups'] : [];
    const argv = [...asUser, process.execPath, ...(isPalisade ? [MAIN] : []), ...args];
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { env, stdio: 'pipe' });
    children.push(child);
    const lines: string[] = [];
    let rest = '';
    const collect = (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    return { child, lines };
  }

  function startCapture(ns: string, link: string) {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'tcpdump',
        '-i',
        link,
        '--immediate-mode',
        '-U',
        '-s',
        '0',
        '-w',
        '-',
        'tcp',
      ],
      {
        stdio: 'pipe',
      },
    );
    children.push(child);
    const chunks: Buffer[] = [];
    let isListening = false;
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => {
      if (c.toString().includes('listening on')) isListening = true;
    });
    return {
      ready: () => isListening,
      stop: () =>
        new Promise<Buffer>((done) => {
          child.once('close', () => done(Buffer.concat(chunks)));
          child.kill('SIGINT');
        }),
    };
  }

  function httpGet(ns: string, url: string): Promise<{ body: string; status: number | null }> {
    const code = `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((b) => process.stdout.write(b), (e) => { process.stderr.write(String(e.cause?.code ?? e)); process.exit(3); })`;
    const client = start(ns, APP_UID, ['-e', code], process.env, false);
    return new Promise((done) => {
      let body = '';
      client.child.stdout?.on('data', (c: Buffer) => (body += c.toString()));
      client.child.once('close', (status) => done({ body, status }));
    });
  }
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
