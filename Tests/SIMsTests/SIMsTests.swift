import Crypto
import Foundation
import SIMs
import Testing

@Suite("ICCID")
struct ICCIDTests {
    // The classic worked example: "7992739871" has Luhn check digit 3.
    @Test func luhnClassicExample() {
        #expect(ICCID.luhnCheckDigit([7, 9, 9, 2, 7, 3, 9, 8, 7, 1]) == 3)
    }

    @Test func acceptsValidNineteenAndTwentyDigits() throws {
        // Check digits computed with an independent Luhn implementation (Python).
        let nineteen = try ICCID("8944101234567890128")
        #expect(nineteen.digits == "8944101234567890128")
        let twenty = try ICCID(" 89441012345678901237 ")
        #expect(twenty.digits == "89441012345678901237")
    }

    @Test func rejectsWrongCheckDigit() {
        #expect(throws: ICCIDError.badCheckDigit(expected: 8, given: 7)) { try ICCID("8944101234567890127") }
    }

    @Test func rejectsBadShape() {
        #expect(throws: ICCIDError.empty) { try ICCID("  ") }
        #expect(throws: ICCIDError.wrongLength(18)) { try ICCID("894410123456789012") }
        #expect(throws: ICCIDError.notDigits("89441012345678901x8")) { try ICCID("89441012345678901x8") }
    }

    @Test func decodesFromJSONWithValidation() throws {
        let good = try JSONDecoder().decode([ICCID].self, from: Data(#"["8944101234567890128"]"#.utf8))
        #expect(good.first?.digits == "8944101234567890128")
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode([ICCID].self, from: Data(#"["8944101234567890127"]"#.utf8))
        }
    }
}

@Suite("SIM password cipher")
struct SIMPasswordCipherTests {
    let iccid = try! ICCID("8944101234567890128")
    let other = try! ICCID("89441012345678901237")

    @Test func roundTripsAndHidesThePassword() throws {
        let cipher = try SIMPasswordCipher(base64Key: SIMPasswordCipher.generateBase64Key())
        let stored = try cipher.encrypt("s3cret-Pa55", iccid: iccid)
        #expect(stored.hasPrefix("v1:"))
        #expect(!stored.contains("s3cret"))
        #expect(try cipher.decrypt(stored, iccid: iccid) == "s3cret-Pa55")
        // A fresh nonce each time: the same password never gives the same ciphertext.
        #expect(try cipher.encrypt("s3cret-Pa55", iccid: iccid) != stored)
    }

    @Test func refusesAnotherKeyOrAnotherSIMsCiphertext() throws {
        let cipher = try SIMPasswordCipher(base64Key: SIMPasswordCipher.generateBase64Key())
        let stranger = try SIMPasswordCipher(base64Key: SIMPasswordCipher.generateBase64Key())
        let stored = try cipher.encrypt("pw", iccid: iccid)
        #expect(throws: SIMPasswordCipherError.wrongKey) { try stranger.decrypt(stored, iccid: iccid) }
        #expect(throws: SIMPasswordCipherError.wrongKey) { try cipher.decrypt(stored, iccid: other) }
        #expect(throws: SIMPasswordCipherError.unknownFormat) { try cipher.decrypt("plaintext", iccid: iccid) }
    }

    @Test func rejectsShortKeys() {
        #expect(throws: SIMPasswordCipherError.badKeyLength(16)) {
            try SIMPasswordCipher(base64Key: Data(repeating: 1, count: 16).base64EncodedString())
        }
        #expect(throws: SIMPasswordCipherError.keyNotBase64) { try SIMPasswordCipher(base64Key: "not base64!") }
    }

    @Test func keyFileIsCreatedPrivateAndReused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("simkey-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("sim-password.key").path
        let first = try SIMPasswordCipher.loadOrCreateKeyFile(at: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let stored = try first.encrypt("pw", iccid: iccid)
        let second = try SIMPasswordCipher.loadOrCreateKeyFile(at: path)
        #expect(try second.decrypt(stored, iccid: iccid) == "pw")
    }
}
