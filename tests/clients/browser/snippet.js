// The browser example of docs/browsers.md, verbatim from the first import line on: run.mjs
// checks that docs/browsers.md holds exactly this text, and page.js runs it in Chromium from
// another origin than the server's.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { KeyType } from "@zitadel/proto/zitadel/auth_n_key_pb.js";
import { ManagementService } from "@zitadel/proto/zitadel/management_pb.js";

export async function addKey(serverUrl, accessToken, userId) {
  const transport = createGrpcWebTransport({ baseUrl: serverUrl }); // binary gRPC-Web
  const management = createClient(ManagementService, transport);
  const headers = { authorization: `Bearer ${accessToken}` };
  const added = await management.addMachineKey({ userId, type: KeyType.JSON }, { headers });
  // keyDetails is the JSON key file, returned only in this answer: save it now
  const keyFile = JSON.parse(new TextDecoder().decode(added.keyDetails));
  const listed = await management.listMachineKeys({ userId }, { headers });
  return { keyId: added.keyId, keyFile, listed: listed.result.map((key) => key.id) };
}
