/// ITU-T G.711 A-law: 16-bit linear PCM ⇄ 8-bit A-law. The encoder keeps the
/// 13 most significant bits (A-law's input range), finds the segment (the
/// position of the leading one), keeps four mantissa bits, and inverts the
/// even bits (XOR 0x55) as G.711 transmits them.
public enum G711ALaw {
    /// Top of each of the eight segments, on the 13-bit magnitude.
    static let segmentEnds: [Int] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]

    public static func encode(_ sample: Int16) -> UInt8 {
        var pcm = Int(sample) >> 3
        let mask: Int
        if pcm >= 0 {
            mask = 0xD5  // sign bit set for positive values, then the even-bit inversion
        } else {
            mask = 0x55
            pcm = -pcm - 1
        }
        guard let segment = segmentEnds.firstIndex(where: { pcm <= $0 }) else {
            return UInt8(0x7F ^ mask)  // beyond the last segment: clip to the largest code
        }
        var code = segment << 4
        code |= segment < 2 ? (pcm >> 1) & 0x0F : (pcm >> segment) & 0x0F
        return UInt8(code ^ mask)
    }

    /// The linear value in the middle of the code's quantisation interval.
    public static func decode(_ code: UInt8) -> Int16 {
        let a = Int(code ^ 0x55)
        var t = (a & 0x0F) << 4
        let segment = (a & 0x70) >> 4
        switch segment {
        case 0: t += 8
        case 1: t += 0x108
        default: t = (t + 0x108) << (segment - 1)
        }
        return Int16(a & 0x80 != 0 ? t : -t)
    }

    public static func encode(_ samples: [Int16]) -> [UInt8] { samples.map { encode($0) } }
    public static func decode(_ codes: [UInt8]) -> [Int16] { codes.map { decode($0) } }
}
