// fal's JavaScript client (@fal-ai/client) pointed at the local gateway. fal-js's hosts are fixed (fal.run,
// queue.fal.run, rest.fal.ai): its request middleware, its own extension point, points them at the
// gateway's HTTPS listener (FAL_RUN_HOST), with the gateway's key (FAL_KEY); NODE_EXTRA_CA_CERTS trusts
// the gateway's certificate.
//
//     const fal = require("./fal_js_gateway.js")(pathOfTheFalAiClientPackage);
module.exports = (client) => {
  const { fal } = require(client);
  const host = process.env.FAL_RUN_HOST;
  fal.config({
    credentials: process.env.FAL_KEY,
    requestMiddleware: async (request) => ({
      ...request,
      url: request.url
        .replace("https://queue.fal.run/", `https://${host}/queue/`)
        .replace("https://fal.run/", `https://${host}/`)
        .replace("https://rest.fal.ai/", `https://${host}/`),
    }),
  });
  return fal;
};
