// `metalbox bmc <command>`: talk to one BMC the way the controller would, so an operator can check an
// address and credentials before writing a host manifest. The password is read from a file (or stdin),
// never taken as a flag: a process's argv is readable by every user on the machine.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { displayAddress, parseBmcAddress } from '../bmc/address.ts';
import { staticCredentials } from '../bmc/credentials.ts';
import type { BmcNotice, BootOnceResult, Inventory } from '../bmc/driver.ts';
import { BmcAddressError, isBmcError } from '../bmc/errors.ts';
import { createBmcFactory } from '../bmc/factory.ts';

const COMMANDS = ['power-status', 'power-on', 'power-off', 'reboot', 'boot-once', 'inventory'] as const;
type Command = (typeof COMMANDS)[number];

const USAGE = `Usage: metalbox bmc <command> --address <url> --username <name> --password-file <file|-> [flags]

Commands:
  power-status   print the power state
  power-on       power on (nothing to do when already on)
  power-off      power off; with --graceful the OS is asked first and power forced after --timeout
  reboot         restart: --mode hard (default) resets at once, --mode soft asks the OS first
  boot-once      make the next boot (only) go to --device pxe|disk; the boot mode is left as it is
                 unless --boot-mode UEFI|legacy asks; prints what the BMC reads back
  inventory      print what the BMC reports: vendor, model, serial, UUID, CPU, memory, NICs, disks

Flags:
  --address        redfish://host[:port]/redfish/v1/Systems/<id> (HTTPS), redfish+http://, redfish+https://,
                   idrac-redfish://, ilo5-redfish://, ipmi://host[:port] (default port 623)
  --username       BMC user
  --password-file  file holding the password, or - to read it from stdin
  --insecure       Redfish over HTTPS: do not verify the BMC's certificate
  --ca-file        Redfish over HTTPS: PEM CA bundle that signed the BMC's certificate
  --graceful       power-off: shut the OS down first
  --force          power-off --graceful / reboot --mode soft: when the BMC offers no graceful reset,
                   force it (without --force that is refused)
  --timeout        power-off --graceful / reboot --mode soft: seconds before power is forced (default 120)
  --mode           reboot: soft | hard
  --device         boot-once: pxe | disk
  --boot-mode      boot-once: UEFI | legacy (default: leave the BMC's boot mode unchanged)
  -o, --output     text (default) | json

Exit codes: 0 done, 1 the BMC operation failed, 2 the command line is wrong.
`;

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Reads all of stdin (for --password-file -). */
  readStdin: () => string;
}

const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  readStdin: () => readFileSync(0, 'utf8'),
};

const flagSchema = z
  .object({
    command: z.enum(COMMANDS, { error: `must be one of ${COMMANDS.join(', ')}` }),
    address: z.string({ error: 'is required' }).trim().min(1, { error: 'is required' }),
    username: z.string({ error: 'is required' }).min(1, { error: 'is required' }),
    'password-file': z.string({ error: 'is required' }).min(1, { error: 'is required' }),
    insecure: z.boolean().optional(),
    'ca-file': z.string().min(1).optional(),
    graceful: z.boolean().optional(),
    force: z.boolean().optional(),
    timeout: z
      .string()
      .regex(/^\d+$/, { error: 'must be a whole number of seconds' })
      .transform(Number)
      .refine((n) => n > 0 && n <= 3600, { error: 'must be between 1 and 3600 seconds' })
      .optional(),
    mode: z.enum(['soft', 'hard'], { error: 'must be soft or hard' }).optional(),
    device: z.enum(['pxe', 'disk'], { error: 'must be pxe or disk' }).optional(),
    'boot-mode': z.enum(['UEFI', 'legacy'], { error: 'must be UEFI or legacy' }).optional(),
    output: z.enum(['text', 'json'], { error: 'must be text or json' }).optional(),
  })
  .superRefine((flags, ctx) => {
    if (flags.command === 'boot-once' && !flags.device) {
      ctx.addIssue({ code: 'custom', path: ['device'], message: 'is required for boot-once (pxe or disk)' });
    }
    if (flags.insecure && flags['ca-file']) {
      ctx.addIssue({ code: 'custom', path: ['insecure'], message: 'cannot be combined with --ca-file' });
    }
  });

type Flags = z.infer<typeof flagSchema>;

function readPassword(path: string, io: CliIo): string {
  let text: string;
  try {
    text = path === '-' ? io.readStdin() : readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(`--password-file: cannot read ${path === '-' ? 'stdin' : path}: ${code}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new UsageError(`--password-file: ${path === '-' ? 'stdin' : path} is empty`);
  return password;
}

class UsageError extends Error {}

function describeInventory(inv: Inventory): string {
  const lines = [
    `manufacturer  ${inv.manufacturer ?? '-'}`,
    `model         ${inv.model ?? '-'}`,
    `serial        ${inv.serialNumber ?? '-'}`,
    `uuid          ${inv.uuid ?? '-'}`,
    `cpu           ${inv.cpu.count ?? '-'} x ${inv.cpu.model ?? '-'}`,
    `memory        ${inv.memoryGiB !== undefined ? `${inv.memoryGiB} GiB` : '-'}`,
    ...inv.nics.map((n) => `nic           ${n.mac} link ${n.link}${n.name ? ` (${n.name})` : ''}`),
    ...inv.disks.map((d) =>
      `disk          ${d.sizeBytes !== undefined ? `${Math.round(d.sizeBytes / 1e9)} GB` : '?'} ${d.model ?? ''} ${d.serialNumber ?? ''}`.trimEnd(),
    ),
    ...inv.incomplete.map((i) => `not reported  ${i}`),
  ];
  return `${lines.join('\n')}\n`;
}

function describeBootOnce(r: BootOnceResult, address: string): string {
  const back = r.readBack;
  if (back.enabled === 'unknown')
    return `boot-once: accepted by ${address} (it does not report the override back)\n`;
  const read = `${back.enabled}${back.target ? ` ${back.target}` : ''}${back.mode ? ` (${back.mode})` : ''}`;
  const verdict = !r.honoured ? 'NOT as asked' : r.persistent ? 'kept for every boot, not once' : 'as asked';
  return `boot-once: accepted by ${address}; the BMC reads back ${read}: ${verdict}\n`;
}

export async function run(args: string[], io: CliIo = processIo): Promise<number> {
  let flags: Flags;
  let password: string;
  let ca: string | undefined;
  try {
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        options: {
          address: { type: 'string' },
          username: { type: 'string' },
          'password-file': { type: 'string' },
          insecure: { type: 'boolean' },
          'ca-file': { type: 'string' },
          graceful: { type: 'boolean' },
          force: { type: 'boolean' },
          timeout: { type: 'string' },
          mode: { type: 'string' },
          device: { type: 'string' },
          'boot-mode': { type: 'string' },
          output: { type: 'string', short: 'o' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    if (parsed.values.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (parsed.positionals.length > 1) {
      throw new UsageError(`one command expected, got: ${parsed.positionals.join(' ')}`);
    }
    const result = flagSchema.safeParse({ ...parsed.values, command: parsed.positionals[0] });
    if (!result.success) {
      const problems = result.error.issues.map((issue) => {
        const field = String(issue.path[0] ?? 'command');
        return field === 'command' ? `command ${issue.message}` : `--${field} ${issue.message}`;
      });
      throw new UsageError(problems.join('; '));
    }
    flags = result.data;
    try {
      parseBmcAddress(flags.address, '--address');
    } catch (error) {
      if (error instanceof BmcAddressError) throw new UsageError(error.message);
      throw error;
    }
    password = readPassword(flags['password-file'], io);
    if (flags['ca-file']) {
      try {
        ca = readFileSync(flags['ca-file'], 'utf8');
      } catch (error) {
        throw new UsageError(
          `--ca-file: cannot read ${flags['ca-file']}: ${(error as NodeJS.ErrnoException).code}`,
        );
      }
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`metalbox bmc: ${error.message}\n\n${USAGE}`);
    return 2;
  }

  const json = flags.output === 'json';
  const command: Command = flags.command;
  let driver: ReturnType<ReturnType<typeof createBmcFactory>['create']> | undefined;
  try {
    const notices: BmcNotice[] = [];
    driver = createBmcFactory().create({
      address: flags.address,
      addressField: '--address',
      // Said once, as it happens, on stderr (stdout stays the command's answer).
      onNotice: (notice) => {
        notices.push(notice);
        if (!json) io.stderr.write(`metalbox bmc ${command}: warning: ${notice.message}\n`);
      },
      credentials: staticCredentials(flags.username, password),
      ...(flags.insecure ? { disableCertificateVerification: true } : {}),
      ...(ca ? { caBundle: ca } : {}),
    });
    const timeoutMs = flags.timeout !== undefined ? flags.timeout * 1000 : undefined;
    const out: Record<string, unknown> = { address: driver.address, command };
    const allowForced = flags.force === true;
    switch (command) {
      case 'power-status':
        out.powerState = await driver.powerState();
        break;
      case 'power-on':
        await driver.powerOn();
        break;
      case 'power-off':
        await driver.powerOff({
          graceful: flags.graceful === true,
          allowForced,
          ...(timeoutMs ? { timeoutMs } : {}),
        });
        break;
      case 'reboot':
        await driver.reboot({ mode: flags.mode ?? 'hard', allowForced, ...(timeoutMs ? { timeoutMs } : {}) });
        break;
      case 'boot-once':
        out.bootOnce = await driver.setBootOnce({
          device: flags.device!,
          ...(flags['boot-mode'] ? { mode: flags['boot-mode'] } : {}),
        });
        break;
      case 'inventory':
        out.inventory = await driver.inventory();
        break;
    }
    if (json) io.stdout.write(`${JSON.stringify({ ...out, notices, result: 'ok' }, null, 2)}\n`);
    else if (command === 'boot-once')
      io.stdout.write(describeBootOnce(out.bootOnce as BootOnceResult, driver.address));
    else if (command === 'power-status') io.stdout.write(`${out.powerState}\n`);
    else if (command === 'inventory') io.stdout.write(describeInventory(out.inventory as Inventory));
    else io.stdout.write(`${command}: accepted by ${driver.address}\n`);
    return 0;
  } catch (error) {
    // A BMC error is a message for a person; anything else is a bug and keeps its stack.
    const message = isBmcError(error)
      ? error.message
      : error instanceof Error
        ? (error.stack ?? error.message)
        : String(error);
    if (json) {
      const code = isBmcError(error) ? error.code : 'Internal';
      io.stdout.write(
        `${JSON.stringify({ address: displayAddress(flags.address), command, result: 'error', error: { code, message } }, null, 2)}\n`,
      );
    }
    io.stderr.write(`metalbox bmc ${command}: ${message}\n`);
    return 1;
  } finally {
    await driver?.close();
  }
}
