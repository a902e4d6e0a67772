import SIMs
import Testing

@Suite("Handset dial plan (S3–S7)")
struct HandsetDialPlanTests {
    let plan = HandsetDialPlan(emergencyNumbers: ["999", "112", "911", "901"])

    @Test func numbersGoToTheCustomerAsDialledWithoutThePlus() {
        #expect(plan.route(dialled: "+447700900123", withheld: false) == .customer("447700900123"))
        #expect(plan.route(dialled: "07700900123", withheld: false) == .customer("07700900123"))
        #expect(plan.route(dialled: "0044-7700-900123", withheld: false) == .customer("00447700900123"))
    }

    @Test func emergencyNumbersNeverGoToTheCustomerEvenWhenWithheld() {
        for n in ["999", "112", "911", "901", "+112"] {
            #expect(plan.route(dialled: n, withheld: false) == .emergency(n.hasPrefix("+") ? "112" : n))
            #expect(plan.route(dialled: n, withheld: true) == .emergency(n.hasPrefix("+") ? "112" : n))
        }
        #expect(plan.route(dialled: "9999", withheld: false) == .customer("9999"))
    }

    @Test func gsmAndProfileCodesAreFilteredOtherServiceStringsPass() {
        for code in ["*#06#", "*#21#", "**21*07700900123#", "##002#", "*02#", "#31#", "*43#"] {
            #expect(plan.route(dialled: code, withheld: false) == .networkCode(code), "\(code)")
        }
        #expect(plan.route(dialled: "*123#", withheld: false) == .customer("*123#"))
        #expect(plan.route(dialled: "*100", withheld: false) == .customer("*100"))
        #expect(plan.route(dialled: "#5", withheld: false) == .customer("#5"))
        let custom = HandsetDialPlan(emergencyNumbers: [], networkServiceCodes: ["123"])
        #expect(custom.route(dialled: "*123#", withheld: false) == .networkCode("*123#"))
        #expect(custom.route(dialled: "*#06#", withheld: false) == .customer("*#06#"))
    }

    @Test func withheldNumbersAndGarbageAreRefused() {
        #expect(plan.route(dialled: "447700900123", withheld: true) == .withheld)
        #expect(plan.route(dialled: "", withheld: false) == .invalid(""))
        #expect(plan.route(dialled: "alice", withheld: false) == .invalid("alice"))
        #expect(plan.route(dialled: "+", withheld: false) == .invalid("+"))
        #expect(plan.route(dialled: "*#", withheld: false) == .invalid("*#"))
    }

    @Test func internationalCLIGetsItsPlusOthersPassUnchanged() {
        #expect(HandsetDialPlan.presentedCLI("447700900123") == "+447700900123")
        #expect(HandsetDialPlan.presentedCLI("+447700900123") == "+447700900123")
        #expect(HandsetDialPlan.presentedCLI("07700900123") == "07700900123")
        #expect(HandsetDialPlan.presentedCLI("12345") == "12345")
        #expect(HandsetDialPlan.presentedCLI("anonymous") == "anonymous")
    }
}
