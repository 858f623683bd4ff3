// What the training wizard knows about a CSV's columns before any upload: a sample of its rows
// read in the browser, each column's look (numeric or text) and whether it looks like an id.
import { splitCsvLine } from './csv'

/** How much of the file the column profile reads (the preview itself reads 64 KiB). */
const PROFILE_BYTES = 1024 * 1024
/** Fewer sampled rows than this say nothing about uniqueness: no column is flagged as an id. */
const MIN_ROWS_FOR_ID = 10

export interface ColumnProfile {
  name: string
  /** Every non-empty sampled value is a number. */
  numeric: boolean
  /** Every non-empty sampled value is an integer (a subset of numeric). */
  integer: boolean
  /** Unique and never empty on every sampled row, integer or text: an identifier, most likely. */
  idLike: boolean
  rows: number
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const INTEGER = /^[+-]?\d+$/

export function profileRows(header: string[], rows: string[][]): ColumnProfile[] {
  return header.map((name, j) => {
    const values = rows.map((r) => (r[j] ?? '').trim())
    const filled = values.filter((v) => v !== '')
    const numeric = filled.length > 0 && filled.every((v) => NUMBER.test(v))
    const integer = numeric && filled.every((v) => INTEGER.test(v))
    const unique = filled.length === values.length && new Set(filled).size === filled.length
    const idLike = rows.length >= MIN_ROWS_FOR_ID && unique && (integer || !numeric)
    return { name, numeric, integer, idLike, rows: rows.length }
  })
}

/** Profiles the columns from the first MiB of the file (complete rows only). */
export async function profileCsv(file: File, header: string[], delimiter: string): Promise<ColumnProfile[]> {
  const chunk = file.size > PROFILE_BYTES ? file.slice(0, PROFILE_BYTES) : file
  let lines = (await chunk.text()).replace(/^\uFEFF/, '').split(/\r?\n/)
  if (file.size > PROFILE_BYTES) lines = lines.slice(0, -1) // the last line may be cut
  const rows = lines
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => splitCsvLine(l, delimiter))
    .filter((r) => r.length === header.length)
  return profileRows(header, rows)
}
