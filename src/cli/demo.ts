// Placeholder until the BareMetalHost lifecycle lands: the demo command exists and exits 0.
export async function run(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write(
      "metalbox demo: provision the seed's five hosts against emulated BMCs and a real Matchbox pair\n",
    );
    return 0;
  }
  process.stdout.write(
    'metalbox demo: the end-to-end demo (five hosts provisioned against sushy-tools and a real Matchbox pair)\n' +
      'arrives with the BareMetalHost lifecycle issue; the test peers it needs are installed by `npm run setup`.\n',
  );
  return 0;
}
