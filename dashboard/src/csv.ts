// Client-side reading of a CSV's header (and a few rows for a preview); no upload needed for that.

/** Splits one CSV line, honouring double quotes and doubled quotes inside them. */
export function splitCsvLine(line: string, delimiter = ','): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]
    if (quoted) {
      if (ch === '"') {
        if (line[i + 1] === '"') {
          cur += '"'
          i++
        } else quoted = false
      } else cur += ch
    } else if (ch === '"') quoted = true
    else if (ch === delimiter) {
      out.push(cur.trim())
      cur = ''
    } else cur += ch
  }
  out.push(cur.trim())
  return out
}

export interface CsvPreview {
  header: string[]
  rows: string[][]
  delimiter: string
}

export function parseCsvPreview(text: string, maxRows = 5): CsvPreview {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).filter((l) => l.trim() !== '')
  const first = lines[0] ?? ''
  const delimiter = first.split(';').length > first.split(',').length ? ';' : ','
  const header = splitCsvLine(first, delimiter)
  // The last line of a truncated chunk may be cut; keep only complete-looking ones.
  const rows = lines.slice(1, maxRows + 1).map((l) => splitCsvLine(l, delimiter)).filter((r) => r.length === header.length)
  return { header, rows, delimiter }
}

export async function readCsvPreview(file: File, maxRows = 5): Promise<CsvPreview> {
  const text = await file.slice(0, 64 * 1024).text()
  return parseCsvPreview(text, maxRows)
}
