import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffBoot, IpxeParseError, parseIpxe, renderIpxe } from '../../src/matchbox/http.ts';

const seed = {
  kernel: '/assets/vmlinuz',
  initrd: ['/assets/initramfs.xz'],
  args: [
    'initrd=initramfs.xz',
    'talos.platform=metal',
    'talos.config=http://10.0.20.5:8080/assets/controlplane.yaml',
  ],
};

test("renderIpxe reproduces Matchbox's ipxe template byte for byte", () => {
  // Matchbox's own pinned output (matchbox/http/ipxe_test.go TestIPXEHandler).
  assert.equal(
    renderIpxe({
      kernel: '/image/kernel',
      initrd: ['/image/initrd_a', '/image/initrd_b'],
      args: ['a=b', 'c'],
    }),
    '#!ipxe\nkernel /image/kernel a=b c\ninitrd /image/initrd_a\ninitrd /image/initrd_b\nboot\n',
  );
  assert.equal(renderIpxe({ kernel: '/k', initrd: [], args: [] }), '#!ipxe\nkernel /k\nboot\n');
});

test('parseIpxe reads kernel, args and initrd lines back, keeping initrd options', () => {
  assert.deepEqual(parseIpxe(renderIpxe(seed)), seed);
  const fcos = { kernel: '/assets/k', initrd: ['--name main /assets/initramfs.img'], args: ['initrd=main'] };
  assert.deepEqual(parseIpxe(renderIpxe(fcos)), fcos);
  assert.deepEqual(parseIpxe('#!ipxe\r\n# comment\r\nkernel /k  a\r\nboot\r\n'), {
    kernel: '/k',
    initrd: [],
    args: ['a'],
  });
});

test('parseIpxe rejects scripts that are not a kernel/initrd/boot answer, naming the line', () => {
  const cases: [string, RegExp][] = [
    ['kernel /k\nboot\n', /line 1: does not start with #!ipxe/],
    ['#!ipxe\nchain ipxe?mac=x\n', /line 2: unexpected command "chain"/],
    ['#!ipxe\nkernel /k\n', /no boot line/],
    ['#!ipxe\nboot\n', /no kernel line/],
    ['#!ipxe\nkernel\nboot\n', /line 2: kernel line names no kernel/],
    ['#!ipxe\nkernel /k\nboot\ninitrd /i\n', /line 4: "initrd" after boot/],
  ];
  for (const [script, message] of cases) {
    assert.throws(
      () => parseIpxe(script),
      (e: unknown) => e instanceof IpxeParseError && message.test(e.message),
      script,
    );
  }
});

test('diffBoot is empty when the answer matches and says what differs otherwise', () => {
  assert.deepEqual(diffBoot(seed, seed), []);
  assert.deepEqual(
    diffBoot(
      {
        ...seed,
        kernel: '/assets/vmlinuz-old',
        args: ['initrd=initramfs.xz', 'talos.platform=metal', 'debug'],
      },
      seed,
    ),
    [
      'kernel: expected /assets/vmlinuz, got /assets/vmlinuz-old',
      'args missing: talos.config=http://10.0.20.5:8080/assets/controlplane.yaml',
      'args unexpected: debug',
    ],
  );
  assert.deepEqual(diffBoot({ ...seed, args: [...seed.args].reverse() }, seed), [
    `args order: expected "${seed.args.join(' ')}", got "${[...seed.args].reverse().join(' ')}"`,
  ]);
  assert.deepEqual(diffBoot({ ...seed, initrd: [] }, seed), [
    'initrd: expected [/assets/initramfs.xz], got []',
  ]);
});
