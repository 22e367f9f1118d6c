// scp's command line, made into what oclif parses: `escp -rp a b host:` runs the copy command,
// clustered single-letter flags are split, a value glued to its letter (-P2222) is detached,
// and repeated -v count as --verbose N.
const SUBCOMMANDS = new Set(['server', 'engines', 'plugins', 'help', 'copy', 'autocomplete'])
/** Single-letter flags that take a value, as in scp. */
const TAKES_VALUE = new Set(['P', 'l', 'o', 'S', 'D', 'i', 'F', 'J', 'c', 't'])

export function normalizeArgv(argv: readonly string[]): string[] {
  if (argv.length > 0 && SUBCOMMANDS.has(argv[0])) return [...argv]
  if (argv.length === 1 && (argv[0] === '-V' || argv[0] === '--version')) return ['--version']
  const out: string[] = ['copy']
  let verbose = 0
  // Operands after `--`, whatever they look like: they stay after the flags.
  let rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      rest = argv.slice(i)
      break
    }
    if (a.startsWith('--') || !a.startsWith('-') || a.length === 1) {
      if (a === '--verbose') verbose++
      else out.push(a)
      continue
    }
    // A cluster like -rpv or -P2222.
    for (let j = 1; j < a.length; j++) {
      const letter = a[j]
      if (letter === 'v') {
        verbose++
      } else if (letter === '4' || letter === '6') {
        // oclif's short flags are letters only.
        out.push(`--ipv${letter}`)
      } else if (TAKES_VALUE.has(letter)) {
        out.push(`-${letter}`)
        const glued = a.slice(j + 1)
        if (glued.length > 0) out.push(glued)
        else if (i + 1 < argv.length) out.push(argv[++i])
        break
      } else {
        out.push(`-${letter}`)
      }
    }
  }
  if (verbose > 0) out.push('--verbose', String(verbose))
  return [...out, ...rest]
}
