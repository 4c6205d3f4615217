/**
 * A Server-Sent Events parser: feed it the text of a stream as it arrives, get whole events back.
 * (The panel reads event streams with `fetch`, so that Jupyter's authentication headers go along;
 * `EventSource` cannot send them.)
 */
export interface IServerEvent {
  event: string;
  data: string;
  id: string | null;
}

export class SSEParser {
  /** The events completed by `chunk` (an event ends at an empty line). */
  push(chunk: string): IServerEvent[] {
    this._buffer += chunk.replace(/\r\n?/g, '\n');
    const events: IServerEvent[] = [];
    let end = this._buffer.indexOf('\n\n');
    while (end !== -1) {
      const block = this._buffer.slice(0, end);
      this._buffer = this._buffer.slice(end + 2);
      const parsed = parseBlock(block);
      if (parsed) {
        events.push(parsed);
      }
      end = this._buffer.indexOf('\n\n');
    }
    return events;
  }

  private _buffer = '';
}

function parseBlock(block: string): IServerEvent | null {
  let event = 'message';
  let id: string | null = null;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) {
      continue; // a comment (keep-alive)
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      event = value;
    } else if (field === 'data') {
      data.push(value);
    } else if (field === 'id') {
      id = value;
    }
  }
  return data.length ? { event, data: data.join('\n'), id } : null;
}
