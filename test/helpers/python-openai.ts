// The official `openai` Python SDK as a test client: installed from PyPI (pinned) into a git-ignored
// virtualenv on first use, so a fresh machine gets it from the test itself. Each call runs
// test/helpers/openai_stream.py, which streams one request and prints what the SDK gave it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PYTHON_OPENAI_VERSION = '3.57.0';
const DIR = join(ROOT, '.keel', 'tools', 'python-openai');
const PYTHON = join(DIR, 'bin', 'python');
const MARKER = join(DIR, 'keel-installed.json');
const SCRIPT = join(ROOT, 'test', 'helpers', 'openai_stream.py');

/** The virtualenv's python, with openai==PYTHON_OPENAI_VERSION installed (first use: a pip install). */
export async function ensurePythonOpenAI(): Promise<string> {
  try {
    if (existsSync(PYTHON) && (JSON.parse(readFileSync(MARKER, 'utf8')) as { version: string }).version === PYTHON_OPENAI_VERSION) return PYTHON;
  } catch {
    // not installed yet
  }
  await run(process.env.PYTHON ?? 'python3', ['-m', 'venv', '--clear', DIR], { timeout: 120_000 });
  await run(PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `openai==${PYTHON_OPENAI_VERSION}`], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  writeFileSync(MARKER, JSON.stringify({ version: PYTHON_OPENAI_VERSION }));
  return PYTHON;
}

export interface PyStreamResult {
  text: string;
  chunks: number;
  roles: number;
  finish: string[];
  usage?: { prompt_tokens: number; completion_tokens: number; cost?: number };
  tool_call?: { name: string; arguments: string };
  request_id?: string;
  error?: { class: string; api_error: boolean; connection_error: boolean; message: string; code?: string | null };
}

export interface PyStreamArgs {
  baseURL: string;
  model: string;
  content?: string;
  tools?: boolean;
  extra?: Record<string, unknown>;
}

/** Streams one request with the Python SDK; `onChunk` sees each chunk's content as it arrives. */
export function pythonStream(args: PyStreamArgs, onChunk?: (content: string, child: ChildProcess) => void): Promise<PyStreamResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let pending = '';
    child.stdout.on('data', (b: Buffer) => {
      pending += b.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('chunk ')) onChunk?.(JSON.parse(line.slice(6)) as string, child);
        else out += line;
      }
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out) as PyStreamResult);
      } catch {
        reject(new Error(`python client exited ${code}: ${out}\n${err}`));
      }
    });
  });
}
