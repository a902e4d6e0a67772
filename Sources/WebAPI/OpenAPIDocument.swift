/// The API's OpenAPI 3.1 description, served at `GET /api/v1/openapi.yaml`.
/// Written by hand; WebAPITests check that it is a valid OpenAPI document and
/// that it lists exactly the routes the server registers.
public enum OpenAPIDocument {
    public static let yaml = #"""
openapi: 3.1.0
info:
  title: Switchboard REST API
  version: 1.0.0
  summary: Accounts, trunks, rate decks, blacklists, limits, CDRs and SIP2SIM SIMs of a Switchboard softswitch.
  description: |
    JSON over HTTP. Money is always a decimal string in the account's currency
    ("0.123456", at most 6 decimal places), never a JSON number. Times are
    RFC 3339 UTC strings. Every error is a JSON object
    `{"error": {"field": ..., "message": ...}}` naming the JSON field, query
    parameter, path parameter or header that is wrong.

    Authentication: `Authorization: Bearer sbk_<id>_<secret>`; create keys
    with `switchboard api-key create [--account ID]`. An operator key (no
    account) may do everything; an account key may read its own account and
    CDRs and manage its own trunks, blacklists and SIMs, and gets 403 for
    anything else (other accounts, account changes and top-ups, rate decks,
    the platform blacklist, a SIM's call and text rates). The text gateway
    (`POST /api/v1/texts`) also takes the account's VoIP credentials (a
    trunk's digest username and password) as HTTP Basic or as the
    `username` and `password` fields.
  license:
    name: Apache-2.0
    identifier: Apache-2.0
servers:
  - url: /
security:
  - apiKey: []
tags:
  - name: accounts
  - name: trunks
  - name: rate decks
  - name: blacklists
  - name: cdrs
  - name: sims
  - name: texts
  - name: meta
paths:
  /api/v1/openapi.yaml:
    get:
      tags: [meta]
      operationId: getOpenAPIDocument
      summary: This document (no key needed).
      security: []
      responses:
        "200":
          description: The OpenAPI document.
          content:
            application/yaml:
              schema:
                type: string
  /api/v1/accounts:
    get:
      tags: [accounts]
      operationId: listAccounts
      summary: Every account (an account key sees only its own).
      responses:
        "200":
          description: The accounts, by ID.
          content:
            application/json:
              schema:
                type: object
                required: [accounts]
                properties:
                  accounts:
                    type: array
                    items: { $ref: "#/components/schemas/Account" }
        "401": { $ref: "#/components/responses/Unauthorized" }
  /api/v1/accounts/{id}:
    parameters:
      - $ref: "#/components/parameters/AccountID"
    get:
      tags: [accounts]
      operationId: getAccount
      summary: One account with its balance, rate deck and limits.
      responses:
        "200":
          description: The account.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Account" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
    put:
      tags: [accounts]
      operationId: putAccount
      summary: Create or update an account (operator keys only).
      description: |
        The body describes the account whole: a field left out takes its
        default (credit_limit "0", cli_policy reject, no rate deck (the deck
        named "default" applies), no limits). `balance` is used only when the
        account is created; afterwards top-ups and calls move it and a balance
        sent with an update is ignored. The currency of an existing account
        cannot change.
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/AccountInput" }
      responses:
        "200":
          description: Updated.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Account" }
        "201":
          description: Created.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Account" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/accounts/{id}/topups:
    parameters:
      - $ref: "#/components/parameters/AccountID"
    post:
      tags: [accounts]
      operationId: topUpAccount
      summary: Add to (or, with a negative amount, take from) a balance (operator keys only).
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [amount]
              properties:
                amount:
                  $ref: "#/components/schemas/SignedMoney"
      responses:
        "200":
          description: The new balance.
          content:
            application/json:
              schema:
                type: object
                required: [account, currency, balance]
                properties:
                  account: { type: string }
                  currency: { $ref: "#/components/schemas/Currency" }
                  balance: { $ref: "#/components/schemas/SignedMoney" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/accounts/{id}/trunks:
    parameters:
      - $ref: "#/components/parameters/AccountID"
    get:
      tags: [trunks]
      operationId: listTrunks
      summary: The account's trunks.
      responses:
        "200":
          description: The trunks, by ID.
          content:
            application/json:
              schema:
                type: object
                required: [trunks]
                properties:
                  trunks:
                    type: array
                    items: { $ref: "#/components/schemas/Trunk" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
  /api/v1/trunks/{id}:
    parameters:
      - name: id
        in: path
        required: true
        description: ACCOUNT-NAME, e.g. 920700-L001.
        schema: { type: string, pattern: "^[A-Za-z0-9]+-[A-Za-z0-9_-]+$" }
    get:
      tags: [trunks]
      operationId: getTrunk
      summary: One trunk (never its password or digests).
      responses:
        "200":
          description: The trunk.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Trunk" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
    put:
      tags: [trunks]
      operationId: putTrunk
      summary: Create or replace a trunk.
      description: |
        Calls match a trunk by source address (source_addresses) or by digest
        credentials (username and password). The password is hashed at once
        to HA1 digests (MD5 and SHA-256) for the node's SIP realm; it is never
        stored, returned or logged. To keep the stored credentials, send the
        same username without a password. User names are unique on the platform.
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/TrunkInput" }
      responses:
        "200":
          description: Replaced.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Trunk" }
        "201":
          description: Created.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Trunk" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
    delete:
      tags: [trunks]
      operationId: deleteTrunk
      summary: Delete a trunk and its blacklist.
      responses:
        "204":
          description: Deleted.
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
  /api/v1/rate-decks/{name}:
    parameters:
      - name: name
        in: path
        required: true
        description: The deck's name; accounts without a deck of their own are rated with the deck named "default".
        schema: { type: string, pattern: "^[A-Za-z0-9_.-]{1,64}$" }
    get:
      tags: [rate decks]
      operationId: getRateDeck
      summary: A rate deck (operator keys only).
      responses:
        "200":
          description: The deck, rates by prefix.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/RateDeck" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
    put:
      tags: [rate decks]
      operationId: putRateDeck
      summary: Create or replace a rate deck (operator keys only).
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/RateDeckInput" }
      responses:
        "200":
          description: Replaced.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/RateDeck" }
        "201":
          description: Created.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/RateDeck" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/blacklists/{scope}:
    parameters:
      - name: scope
        in: path
        required: true
        description: "platform (operator keys only), account:ID or trunk:ACCOUNT-NAME."
        schema: { type: string, examples: ["platform", "account:920700", "trunk:920700-L001"] }
    get:
      tags: [blacklists]
      operationId: getBlacklist
      summary: The destination prefixes barred in one scope (longest-prefix match).
      responses:
        "200":
          description: The blacklist.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Blacklist" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
    put:
      tags: [blacklists]
      operationId: putBlacklist
      summary: Replace the prefixes of one scope.
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [prefixes]
              properties:
                scope: { type: string, description: "If given, must equal the path's scope." }
                prefixes:
                  type: array
                  items: { $ref: "#/components/schemas/Prefix" }
      responses:
        "200":
          description: The blacklist now.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Blacklist" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/cdrs:
    get:
      tags: [cdrs]
      operationId: listCDRs
      summary: Call detail records, oldest first. An account key sees only its own account's.
      parameters:
        - name: account
          in: query
          schema: { type: string }
        - name: trunk
          in: query
          description: ACCOUNT-NAME.
          schema: { type: string }
        - name: tag
          in: query
          description: One term of the X-simwood-tag split on single "-" (CUST001-AB384720 is found by CUST001 and by AB384720).
          schema: { type: string, maxLength: 128 }
        - name: from
          in: query
          description: Calls that started at or after this time; Unix seconds or RFC 3339.
          schema: { $ref: "#/components/schemas/TimeParameter" }
        - name: to
          in: query
          description: Calls that started before this time; Unix seconds or RFC 3339.
          schema: { $ref: "#/components/schemas/TimeParameter" }
        - name: limit
          in: query
          schema: { type: integer, minimum: 1, maximum: 10000, default: 1000 }
      responses:
        "200":
          description: The matching CDRs.
          content:
            application/json:
              schema:
                type: object
                required: [cdrs]
                properties:
                  cdrs:
                    type: array
                    items: { $ref: "#/components/schemas/CDR" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/sims:
    get:
      tags: [sims]
      operationId: listSIMs
      summary: SIP2SIM SIMs, by ICCID. An account key sees only its own account's.
      parameters:
        - name: account
          in: query
          description: Only this account's SIMs.
          schema: { $ref: "#/components/schemas/AccountID" }
      responses:
        "200":
          description: The SIMs.
          content:
            application/json:
              schema:
                type: object
                required: [sims]
                properties:
                  sims:
                    type: array
                    items: { $ref: "#/components/schemas/SIM" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/sims/{iccid}:
    parameters:
      - $ref: "#/components/parameters/ICCID"
    get:
      tags: [sims]
      operationId: getSIM
      summary: One SIM's settings (never its password).
      responses:
        "200":
          description: The SIM.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/SIM" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
    put:
      tags: [sims]
      operationId: putSIM
      summary: Create or update a SIM's settings.
      description: |
        The body describes the SIM whole (optional fields left out are
        cleared), except: `password` may be left out to keep the stored one
        (it is required when the SIM is created); `account` may be left out to
        keep the SIM's account (an account key's SIMs always belong to its
        account); `call_rate` and `text_rate` are set by operator keys: an
        account key may leave them out (the stored rates are kept) or repeat
        them, not change them.
        The password is encrypted at once (AES-256-GCM with the node's
        `sims.password_key`) and is never returned or logged. Changes reach
        the SIM's registration within a minute.
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/SIMInput" }
      responses:
        "200":
          description: Updated (or unchanged).
          content:
            application/json:
              schema: { $ref: "#/components/schemas/SIM" }
        "201":
          description: Created.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/SIM" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "422": { $ref: "#/components/responses/Invalid" }
        "503":
          description: The node has no SIM password key, so a password cannot be stored (field "password").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
    delete:
      tags: [sims]
      operationId: deleteSIM
      summary: Delete a SIM and its registration status.
      responses:
        "204":
          description: Deleted.
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/sims/{iccid}/registration:
    parameters:
      - $ref: "#/components/parameters/ICCID"
    get:
      tags: [sims]
      operationId: getSIMRegistration
      summary: The SIM's outbound registration status, one entry per node registering it.
      responses:
        "200":
          description: The registration status by node (empty before any node has tried).
          content:
            application/json:
              schema:
                type: object
                required: [iccid, registrations]
                properties:
                  iccid: { $ref: "#/components/schemas/ICCID" }
                  registrations:
                    type: array
                    items: { $ref: "#/components/schemas/SIMRegistration" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
  /api/v1/texts:
    get:
      tags: [texts]
      operationId: listTexts
      summary: Texts (without their bodies), oldest first; e.g. state=failed for those that could not be delivered. An account key sees only its own.
      parameters:
        - name: account
          in: query
          schema: { $ref: "#/components/schemas/AccountID" }
        - name: iccid
          in: query
          schema: { $ref: "#/components/schemas/ICCID" }
        - name: direction
          in: query
          schema: { type: string, enum: [from_handset, to_handset, to_network] }
        - name: state
          in: query
          schema: { type: string, enum: [queued, delivered, failed] }
        - name: from
          in: query
          description: Texts received at or after this time; Unix seconds or RFC 3339.
          schema: { $ref: "#/components/schemas/TimeParameter" }
        - name: to
          in: query
          description: Texts received before this time.
          schema: { $ref: "#/components/schemas/TimeParameter" }
        - name: limit
          in: query
          schema: { type: integer, minimum: 1, maximum: 1000, default: 100 }
      responses:
        "200":
          description: The matching texts.
          content:
            application/json:
              schema:
                type: object
                required: [texts]
                properties:
                  texts:
                    type: array
                    items: { $ref: "#/components/schemas/Text" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "422": { $ref: "#/components/responses/Invalid" }
    post:
      tags: [texts]
      operationId: sendText
      summary: A text to a SIM's handset (S10), sent to the mobile core as a SIP MESSAGE (RFC 3428).
      description: |
        Queued at once and delivered in order per SIM; 202 with the text's id,
        whose state `GET /api/v1/texts/{id}` shows (queued, delivered, or
        failed with the mobile core's SIP code). A timeout, 408, 480 or 5xx
        from the mobile core is retried with back-off (the `texts` settings);
        any other refusal fails the text. A delivered text is charged
        `segments` x the SIM's `text_rate` (a CDR with call_type "text").
        Credentials: an API key (the SIM's account's, or an operator's), or
        the account's VoIP username and password (HTTP Basic, or the
        `username`/`password` fields, for scripts). The body is JSON or
        form-encoded with the same fields. Re-sending with the same
        `Idempotency-Key` header returns the first text instead of a second.
      security:
        - apiKey: []
        - voipBasic: []
        - {}
      parameters:
        - name: Idempotency-Key
          in: header
          required: false
          schema: { type: string, maxLength: 200 }
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/TextInput" }
          application/x-www-form-urlencoded:
            schema: { $ref: "#/components/schemas/TextInput" }
      responses:
        "202":
          description: Accepted and queued; `Location` is the text's URL.
          headers:
            Location:
              schema: { type: string }
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Text" }
        "400": { $ref: "#/components/responses/Malformed" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "402":
          description: The account's balance and credit do not cover the text's charge (field "to").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "403":
          description: The SIM is not the credentials' account's (field "to").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "404":
          description: No SIM with that ICCID (field "to").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "413":
          description: The body is over 16 KiB (field "body").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "415":
          description: Neither JSON nor form-encoded (field "Content-Type").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "422":
          description: |
            A field is wrong: `to` not an ICCID; `text` missing, empty, over
            `texts.max_segments` segments or 1,000 bytes, or (form) not UTF-8;
            `from` not a number or sender name, or missing when the SIM has no
            linked number; an unknown field.
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
        "503":
          description: The node has no mobile core configured (field "to").
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Error" }
  /api/v1/texts/{id}:
    parameters:
      - name: id
        in: path
        required: true
        schema: { type: string, pattern: "^[A-Za-z0-9_]{1,64}$" }
    get:
      tags: [texts]
      operationId: getText
      summary: A text's delivery state (S10, S11) — queued, delivered or failed, with attempts, the last error and SIP code.
      responses:
        "200":
          description: The text (its body is not returned).
          content:
            application/json:
              schema: { $ref: "#/components/schemas/Text" }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/Forbidden" }
        "404": { $ref: "#/components/responses/NotFound" }
        "422": { $ref: "#/components/responses/Invalid" }
components:
  securitySchemes:
    apiKey:
      type: http
      scheme: bearer
      bearerFormat: sbk_<id>_<secret>
      description: Only SHA-256 of the secret is stored; the key is shown once, when it is created.
    voipBasic:
      type: http
      scheme: basic
      description: The account's VoIP credentials (a trunk's digest username and password); accepted by POST /api/v1/texts only.
  parameters:
    AccountID:
      name: id
      in: path
      required: true
      schema: { $ref: "#/components/schemas/AccountID" }
    ICCID:
      name: iccid
      in: path
      required: true
      description: The SIM's ICCID; one that fails the Luhn check is refused with 422 (field "iccid").
      schema: { $ref: "#/components/schemas/ICCID" }
  responses:
    Malformed:
      description: The body is not JSON, or not a JSON object (field "body").
      content:
        application/json:
          schema: { $ref: "#/components/schemas/Error" }
    Unauthorized:
      description: No API key, or an unknown, deleted or wrong one (field "Authorization").
      headers:
        WWW-Authenticate:
          description: Bearer
          schema: { type: string }
      content:
        application/json:
          schema: { $ref: "#/components/schemas/Error" }
    Forbidden:
      description: The key may not see or change this object.
      content:
        application/json:
          schema: { $ref: "#/components/schemas/Error" }
    NotFound:
      description: No such object (or, field "path", no such route).
      content:
        application/json:
          schema: { $ref: "#/components/schemas/Error" }
    Invalid:
      description: A field or query parameter fails validation; `field` names it (e.g. "source_addresses[1]", "limits.rate.seconds", "rates[0].per_minute").
      content:
        application/json:
          schema: { $ref: "#/components/schemas/Error" }
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [field, message]
          properties:
            field:
              type: string
              description: The JSON field (dotted path, [index] for list items), query parameter, path parameter or header that is wrong.
            message:
              type: string
              description: What is wrong and what is expected.
    AccountID:
      type: string
      pattern: "^[A-Za-z0-9]{1,64}$"
    Currency:
      type: string
      pattern: "^[A-Z]{3}$"
      examples: ["GBP"]
    Money:
      type: string
      pattern: "^[0-9]+(\\.[0-9]{0,6})?$"
      description: A non-negative decimal amount as a string.
      examples: ["0.0125"]
    SignedMoney:
      type: string
      pattern: "^-?[0-9]+(\\.[0-9]{0,6})?$"
      examples: ["-1.50"]
    Prefix:
      type: string
      pattern: "^\\+?[0-9]{1,20}$"
    TimeParameter:
      type: string
      description: Unix seconds (1700000000) or RFC 3339 (2024-03-01T12:00:00Z).
    RateLimit:
      type: object
      additionalProperties: false
      required: [calls, seconds]
      description: At most `calls` new calls per `seconds` seconds.
      properties:
        calls: { type: integer, minimum: 0, maximum: 1000000 }
        seconds: { type: integer, minimum: 1, maximum: 86400 }
    CallTypeLimits:
      type: object
      additionalProperties: false
      properties:
        channels: { type: integer, minimum: 0, maximum: 1000000 }
        rate: { $ref: "#/components/schemas/RateLimit" }
    TrunkLimits:
      type: object
      additionalProperties: false
      description: Absent limits are unlimited.
      properties:
        channels: { type: integer, minimum: 0, maximum: 1000000, description: Concurrent calls. }
        rate: { $ref: "#/components/schemas/RateLimit" }
        call_types:
          type: object
          description: Limits per call type (e.g. international); names are letters, digits and '_'.
          additionalProperties: { $ref: "#/components/schemas/CallTypeLimits" }
    AccountLimits:
      type: object
      additionalProperties: false
      description: Absent limits are unlimited.
      properties:
        channels: { type: integer, minimum: 0, maximum: 1000000 }
        rate: { $ref: "#/components/schemas/RateLimit" }
        call_types:
          type: object
          additionalProperties: { $ref: "#/components/schemas/CallTypeLimits" }
        low_balance:
          type: object
          additionalProperties: false
          required: [below]
          description: Fewer channels or calls while balance plus credit is below `below`.
          properties:
            below: { $ref: "#/components/schemas/Money" }
            channels: { type: integer, minimum: 0, maximum: 1000000 }
            rate: { $ref: "#/components/schemas/RateLimit" }
    Account:
      type: object
      required: [id, name, currency, balance, credit_limit, cli_policy, rate_deck, limits]
      properties:
        id: { $ref: "#/components/schemas/AccountID" }
        name: { type: string }
        currency: { $ref: "#/components/schemas/Currency" }
        balance: { $ref: "#/components/schemas/SignedMoney" }
        credit_limit: { $ref: "#/components/schemas/Money" }
        cli_policy: { type: string, enum: [reject, warn] }
        rate_deck: { type: [string, "null"], description: null means the deck named "default". }
        limits: { $ref: "#/components/schemas/AccountLimits" }
    AccountInput:
      type: object
      additionalProperties: false
      required: [name, currency]
      properties:
        id: { type: string, description: "If given, must equal the path's id." }
        name: { type: string, minLength: 1 }
        currency: { $ref: "#/components/schemas/Currency" }
        balance: { $ref: "#/components/schemas/SignedMoney" }
        credit_limit: { $ref: "#/components/schemas/Money" }
        cli_policy: { type: string, enum: [reject, warn], default: reject }
        rate_deck: { type: [string, "null"] }
        limits: { $ref: "#/components/schemas/AccountLimits" }
    Trunk:
      type: object
      required: [id, account, name, source_addresses, username, realm, has_password, limits]
      properties:
        id: { type: string, examples: ["920700-L001"] }
        account: { $ref: "#/components/schemas/AccountID" }
        name: { type: string }
        source_addresses:
          type: array
          items: { type: string, description: IPv4 or IPv6 address or CIDR block. }
        username: { type: [string, "null"] }
        realm: { type: [string, "null"], description: The realm the stored digests were made for. }
        has_password: { type: boolean }
        limits: { $ref: "#/components/schemas/TrunkLimits" }
    TrunkInput:
      type: object
      additionalProperties: false
      properties:
        id: { type: string, description: "If given, must equal the path's id." }
        account: { type: string, description: "If given, must equal the path's account." }
        name: { type: string, description: "If given, must equal the path's name." }
        source_addresses:
          type: array
          items: { type: string }
          examples: [["192.0.2.0/24", "2001:db8::1"]]
        username: { type: [string, "null"] }
        password:
          type: [string, "null"]
          minLength: 8
          writeOnly: true
          description: Required with a new username; hashed at once, never stored or returned.
        limits: { $ref: "#/components/schemas/TrunkLimits" }
    Rate:
      type: object
      additionalProperties: false
      required: [prefix, per_minute]
      properties:
        prefix: { type: string, pattern: "^[0-9]{1,20}$" }
        destination: { type: string }
        connection: { $ref: "#/components/schemas/Money" }
        per_minute: { $ref: "#/components/schemas/Money" }
        increments:
          type: string
          pattern: "^[0-9]+/[0-9]+$"
          default: 60/60
          description: Billing increments first/next in seconds (60/60, 1/1, 30/6).
    RateDeck:
      type: object
      required: [name, currency, rates]
      properties:
        name: { type: string }
        currency: { $ref: "#/components/schemas/Currency" }
        rates:
          type: array
          items: { $ref: "#/components/schemas/Rate" }
    RateDeckInput:
      type: object
      additionalProperties: false
      required: [currency, rates]
      properties:
        name: { type: string, description: "If given, must equal the path's name." }
        currency: { $ref: "#/components/schemas/Currency" }
        rates:
          type: array
          items: { $ref: "#/components/schemas/Rate" }
    Blacklist:
      type: object
      required: [scope, prefixes]
      properties:
        scope: { type: string }
        prefixes:
          type: array
          items: { type: string, pattern: "^[0-9]{1,20}$" }
    ICCID:
      type: string
      pattern: "^[0-9]{19,20}$"
      description: 19 or 20 digits, the last a Luhn check digit over the others (ITU-T E.118).
      examples: ["8944101234567890128"]
    SIM:
      type: object
      required: [iccid, account, sip_hostname, username, webhook_url, linked_number, operator_name, call_rate, text_rate, texts_out, updated_at]
      properties:
        iccid: { $ref: "#/components/schemas/ICCID" }
        account: { $ref: "#/components/schemas/AccountID" }
        sip_hostname: { type: string, description: "The customer's SIP server the SIM registers to: a domain (RFC 3263), IPv4 or [IPv6], optional :port." }
        username: { type: string }
        webhook_url: { type: [string, "null"], format: uri, description: Where texts from the handset are POSTed. }
        linked_number: { type: [string, "null"], pattern: "^[1-9][0-9]{5,14}$", description: "The customer's number linked to the SIM, international form without '+'." }
        operator_name: { type: [string, "null"] }
        call_rate:
          description: Per-minute call rate in the account's currency; null means the account's rate deck applies.
          oneOf:
            - $ref: "#/components/schemas/Money"
            - type: "null"
        text_rate:
          description: Charge per text segment, each direction (S13); null means texts are free.
          oneOf:
            - $ref: "#/components/schemas/Money"
            - type: "null"
        texts_out:
          type: string
          enum: [webhook, linked_number]
          description: "Where the handset's texts go: POSTed to webhook_url (S11), or sent on to the number dialled through a carrier gateway as from linked_number (S12)."
        updated_at: { type: string, format: date-time }
    Text:
      type: object
      required: [id, direction, iccid, account, peer, state, segments, attempts, received_at]
      properties:
        id: { type: string }
        direction: { type: string, enum: [from_handset, to_handset, to_network] }
        iccid: { $ref: "#/components/schemas/ICCID" }
        account: { type: string }
        peer: { type: string, description: "From the handset, the number it addressed; to the handset, the sender." }
        state: { type: string, enum: [queued, delivered, failed] }
        segments: { type: integer, minimum: 0 }
        attempts: { type: integer, minimum: 0 }
        received_at: { type: string, format: date-time }
        delivered_at: { type: [string, "null"], format: date-time }
        next_attempt_at: { type: [string, "null"], format: date-time }
        last_error: { type: [string, "null"] }
        sip_code: { type: [integer, "null"], description: "To a handset: the mobile core's final SIP code of the last attempt." }
    TextInput:
      type: object
      additionalProperties: false
      required: [to, text]
      properties:
        to: { $ref: "#/components/schemas/ICCID" }
        text: { type: string, minLength: 1, description: "At most texts.max_segments segments (153 GSM-7 or 67 UCS-2 characters each) and 1,000 bytes." }
        from: { type: string, description: "A number (digits, optional +) or a sender name of up to 11 characters; by default the SIM's linked number." }
        username: { type: string, description: The account's VoIP username, when no Authorization header is sent. }
        password: { type: string, writeOnly: true }
    SIMInput:
      type: object
      additionalProperties: false
      required: [sip_hostname, username]
      properties:
        iccid: { type: string, description: "If given, must equal the path's ICCID." }
        account: { $ref: "#/components/schemas/AccountID" }
        sip_hostname: { type: string, examples: ["pbx.example.com", "192.0.2.10:5080"] }
        username: { type: string, minLength: 1, maxLength: 128 }
        password:
          type: string
          minLength: 1
          maxLength: 128
          writeOnly: true
          description: Required when the SIM is created; left out, the stored password is kept. Encrypted at once, never returned or logged.
        webhook_url: { type: [string, "null"], format: uri }
        linked_number: { type: [string, "null"], pattern: "^\\+?[1-9][0-9]{5,14}$" }
        operator_name: { type: [string, "null"], maxLength: 64 }
        call_rate:
          description: Operator keys only (see the operation).
          oneOf:
            - $ref: "#/components/schemas/Money"
            - type: "null"
        text_rate:
          description: Operator keys only, like call_rate.
          oneOf:
            - $ref: "#/components/schemas/Money"
            - type: "null"
        texts_out:
          type: [string, "null"]
          enum: [webhook, linked_number, null]
          description: "Default webhook; linked_number needs linked_number."
    SIMRegistration:
      type: object
      required: [node, state, last_code, last_reason, registered_until, next_attempt, updated_at]
      properties:
        node: { type: string, description: The node registering the SIM. }
        state: { type: string, enum: [registered, failing, pending, unregistered] }
        last_code: { type: [integer, "null"], description: "The registrar's last final response code (e.g. 200, 403)." }
        last_reason: { type: [string, "null"] }
        registered_until: { type: [string, "null"], format: date-time }
        next_attempt: { type: [string, "null"], format: date-time, description: "The next refresh, or the next retry after a failure." }
        updated_at: { type: string, format: date-time }
    CDR:
      type: object
      required: [id, call_id, account, trunk, tag, from, to, call_type, start_at, answer_at, end_at, duration_seconds, billed_seconds, cost, final_status, reason, interrupted]
      properties:
        id: { type: integer }
        call_id: { type: string }
        account: { type: string }
        trunk: { type: [string, "null"] }
        tag: { type: [string, "null"], description: The X-simwood-tag as given. }
        from: { type: string }
        to: { type: string }
        call_type: { type: [string, "null"] }
        start_at: { type: string, format: date-time }
        answer_at: { type: [string, "null"], format: date-time }
        end_at: { type: string, format: date-time }
        duration_seconds: { type: integer }
        billed_seconds: { type: integer }
        cost: { $ref: "#/components/schemas/Money" }
        final_status: { type: integer, description: The SIP final status (0 for a call interrupted by a stop). }
        reason: { type: [string, "null"] }
        interrupted: { type: boolean }
        segments: { type: [integer, "null"], description: "A text's CDR (call_type \"text\"): the segments charged; null for calls." }
"""#
}
