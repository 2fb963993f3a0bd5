// `node out/testkit/kudu-server/cli.js --home <dir> [--port N] [--user u --password p] [--setting NAME=VALUE]...`
// Prints the URL on the first line of stdout, then serves until SIGINT/SIGTERM.
import { startKuduServer } from './server';

function usage(message?: string): never {
  if (message) process.stderr.write(message + '\n');
  process.stderr.write('usage: cli.js --home <dir> [--port N] [--user u --password p] [--instance-id id] [--setting NAME=VALUE]...\n');
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  let home: string | undefined;
  let port = 0;
  let user = 'user';
  let password = 'pass';
  let instanceId: string | undefined;
  const settings: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const value = (): string => argv[++i] ?? usage(`${argv[i - 1]} needs a value`);
    switch (argv[i]) {
      case '--home': home = value(); break;
      case '--port': port = Number(value()); break;
      case '--user': user = value(); break;
      case '--password': password = value(); break;
      case '--instance-id': instanceId = value(); break;
      case '--setting': {
        const [name, ...rest] = value().split('=');
        settings[name] = rest.join('=');
        break;
      }
      case '--help': case '-h': usage();
      // falls through (usage exits)
      default: usage(`unknown argument ${argv[i]}`);
    }
  }
  if (!home) usage('--home is required');
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage('--port must be 0-65535');

  const kudu = await startKuduServer({ home, port, auth: { basic: { username: user, password } }, settings, instanceId });
  process.stdout.write(kudu.url + '\n');
  process.stderr.write(`Kudu server for ${kudu.home} (basic auth user '${user}'); Ctrl+C to stop\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    kudu.close().then(() => process.exit(0), error => {
      process.stderr.write(String(error) + '\n');
      process.exit(1);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main(process.argv.slice(2)).catch(error => {
  process.stderr.write(String(error?.stack ?? error) + '\n');
  process.exit(1);
});
