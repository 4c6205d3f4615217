// fal's JavaScript client (@fal-ai/client) with the MEDIA app (gateway_apps.py) on the gateway
// (fal_js_gateway.js): the image and the file it returns, fetched by their URLs; a file stored with
// fal.storage.upload and one uploaded by fal-js itself (a Blob in the input), both read back by the app.
//
//     node fal_js_media.js <path of @fal-ai/client> <endpoint id, e.g. local/media>
const fal = require("./fal_js_gateway.js")(process.argv[2]);
const app = process.argv[3];

async function fetched(url) {
  const response = await fetch(url);
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, type: response.headers.get("content-type"), body };
}

(async () => {
  const out = {};
  const { data: painted } = await fal.subscribe(app, { input: { size: 20 } });
  const image = await fetched(painted.image.url);
  out.image = {
    ...painted.image,
    status: image.status,
    type: image.type,
    png: image.body.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  };
  const { data: written } = await fal.subscribe(`${app}/file`, { input: { text: "from fal-js" } });
  out.file = { ...written.file, text: (await fetched(written.file.url)).body.toString() };
  const url = await fal.storage.upload(new Blob(["stored by fal.storage"], { type: "text/plain" }));
  out.stored = { url, read: (await fal.subscribe(`${app}/read`, { input: { file: url } })).data };
  const blob = new Blob(["a Blob in the input"], { type: "text/plain" });
  out.blob = (await fal.subscribe(`${app}/read`, { input: { file: blob } })).data;
  console.log(JSON.stringify(out));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
