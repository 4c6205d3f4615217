import { SSEParser } from '../src/sse';

describe('SSEParser', () => {
  it('returns whole events however the stream is cut', () => {
    const parser = new SSEParser();
    expect(parser.push('event: progress\nda')).toEqual([]);
    expect(
      parser.push(
        'ta: {"seq": 1}\n\n: keep-alive\n\nevent: progress\r\ndata: {"seq": 2}\r\n\r\n'
      )
    ).toEqual([
      { event: 'progress', data: '{"seq": 1}', id: null },
      { event: 'progress', data: '{"seq": 2}', id: null }
    ]);
  });

  it('joins multi-line data and reads ids; defaults the event name', () => {
    const parser = new SSEParser();
    expect(parser.push('id: 7\ndata: a\ndata: b\n\n')).toEqual([
      { event: 'message', data: 'a\nb', id: '7' }
    ]);
  });
});
