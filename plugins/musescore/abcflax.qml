// abcflax for MuseScore 4 (4.3 or later): continue or harmonize the open score with abcflax.
//
// The score goes out as MusicXML (writeScore), abcflax runs as a separate process (QProcess via
// newQProcess + startWithArgs, which MuseScore 4.3 added; plain start() with arguments broke in 4.x), and the
// result comes back as a new score (readScore). MuseScore plugins cannot add import/export formats, so this is
// the whole integration. See README.md for installation and what must be on PATH.

import QtQuick 2.15
import QtQuick.Controls 2.15
import QtQuick.Layouts 1.15
import MuseScore 3.0
import FileIO 3.0

MuseScore {
    id: plugin
    version: "0.1.0"
    title: "abcflax: continue or harmonize"
    description: "Continue a folk tune or add chord symbols with abcflax (a char-LSTM trained on folk tunes)."
    pluginType: "dialog"
    categoryCode: "composing-arranging-tools"
    requiresScore: true
    width: 380
    height: 230

    // The abcflax executable: a name found on PATH, or a full path (e.g. /home/me/.venv/bin/abcflax or
    // C:/Users/me/venv/Scripts/abcflax.exe) when MuseScore is started without your shell's PATH.
    property string abcflaxProgram: "abcflax"
    property int timeoutMs: 300000  // model loading plus sampling on a slow CPU

    FileIO { id: probe }

    function tempBase(kind) {
        // a fresh name each run: no --force needed, and an earlier result is never overwritten
        return probe.tempPath() + "/abcflax-" + kind + "-" + Date.now();
    }

    function exportScore(base) {
        // MuseScore versions differ on whether writeScore appends the extension: accept either file
        if (!writeScore(curScore, base, "musicxml"))
            return "";
        var candidates = [base + ".musicxml", base];
        for (var i = 0; i < candidates.length; ++i) {
            probe.source = candidates[i];
            if (probe.exists())
                return candidates[i];
        }
        return "";
    }

    function runAbcflax(args) {
        var proc = newQProcess();
        proc.startWithArgs(abcflaxProgram, args);
        var finished = proc.waitForFinished(timeoutMs);
        var out = String(proc.readAllStandardOutput());
        if (typeof proc.readAllStandardError === "function")
            out += String(proc.readAllStandardError());
        return { finished: finished, output: out.trim() };
    }

    function run() {
        var action = actionBox.currentText;  // "continue" or "harmonize"
        var input = exportScore(tempBase("in"));
        if (input === "") {
            status.text = "Could not export the score to MusicXML.";
            return;
        }
        var output = tempBase("out-" + action) + ".musicxml";
        var args = [action, input, "-o", output];
        if (action === "continue")
            args = args.concat(["--bars", String(barsBox.value)]);
        status.text = "Running " + abcflaxProgram + " " + action + " ...";
        var result = runAbcflax(args);
        probe.source = output;
        if (!result.finished || !probe.exists()) {
            status.text = (result.finished ? "abcflax failed" : "abcflax did not finish in time")
                    + (result.output ? ":\n" + result.output : " (is '" + abcflaxProgram + "' on PATH?)");
            return;
        }
        readScore(output);
        status.text = "Opened " + output + (result.output ? "\n" + result.output : "");
    }

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: 12
        spacing: 8

        RowLayout {
            Label { text: "Action:" }
            ComboBox { id: actionBox; model: ["harmonize", "continue"]; Layout.fillWidth: true }
        }
        RowLayout {
            enabled: actionBox.currentText === "continue"
            Label { text: "Bars to add:" }
            SpinBox { id: barsBox; from: 1; to: 64; value: 8 }
        }
        Label {
            id: status
            Layout.fillWidth: true
            Layout.fillHeight: true
            wrapMode: Text.Wrap
            text: "Uses the first part of the open score as the melody."
        }
        RowLayout {
            Layout.alignment: Qt.AlignRight
            Button { text: "Run"; onClicked: plugin.run() }
            Button { text: "Close"; onClicked: plugin.quit() }
        }
    }
}
